#pragma once

#include <asio/awaitable.hpp>

#include <filesystem>

namespace axds {

/// Removes a directory tree (spec §9.2): a symlink target is never followed (the link itself is removed); a missing
/// path is silently fine; the entries of each directory are unlinked in parallel on the CPU pool and directories are
/// removed bottom-up. A directory that cannot be removed after 5 attempts 500 ms apart is left in place with the
/// §9.2 warning ("Unable to remove the {path} directory after 5 attempts"); the call then returns normally.
/// @throws not_a_directory_error when the path is a regular file; os_error family when an entry cannot be unlinked.
asio::awaitable<void> async_delete_directory(std::filesystem::path directory);

}  // namespace axds
