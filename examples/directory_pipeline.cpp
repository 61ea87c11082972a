// The Python README's Processing Utilities sections in C++: directory checksum, verified transfer, move, deletion.
//
//   ads_example_directory_pipeline
//
// Builds a small session tree, then: checksum with progress (saved to ax_checksum.txt), checksum without saving
// and with extra exclusions, a verified transfer with 4 parallel copies, a move (transfer + remove the source after
// verification), and a deletion. The digests are the Python library's calculate_directory_checksum results.

#include <axds/core/runtime.hpp>
#include <axds/fs/checksum.hpp>
#include <axds/fs/delete.hpp>
#include <axds/fs/transfer.hpp>

#include <fmt/format.h>

#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "scratch_directory.hpp"
#include <unistd.h>

namespace fs = std::filesystem;

namespace {

void make_session(const fs::path& root) {
    for (int camera = 0; camera < 3; ++camera) {
        const fs::path dir = root / "raw_data" / fmt::format("camera_{}", camera);
        fs::create_directories(dir);
        for (int chunk = 0; chunk < 20; ++chunk) {
            std::ofstream(dir / fmt::format("chunk_{:03}.bin", chunk), std::ios::binary)
                << std::string(static_cast<std::size_t>(4096 * (chunk + 1)), static_cast<char>('a' + camera));
        }
    }
    fs::create_directories(root / "processed_data");  // empty directories are reproduced by transfers
    std::ofstream(root / "session.yaml") << "animal: A001\n";
    std::ofstream(root / ".gitignore") << "*.tmp\n";
}

asio::awaitable<int> run(fs::path work) {
    const fs::path source = work / "session";
    make_session(source);

    // Checksum with progress, saved to session/ax_checksum.txt.
    axds::checksum_options with_progress{.workers = 0, .save_checksum = true};
    with_progress.progress = [](const axds::checksum_progress& p) {
        fmt::print("  hashed {}/{} files ({} bytes)\n", p.files_done, p.files_total, p.bytes_done);
    };
    const std::string checksum = co_await axds::async_calculate_directory_checksum(source, std::move(with_progress));
    fmt::print("Directory checksum: {}\n", checksum);

    // Without saving, excluding more files (for batch processing).
    axds::checksum_options quiet{.save_checksum = false};
    quiet.excluded_files = std::set<std::string>{"ax_checksum.txt", ".gitignore"};
    const std::string without_gitignore = co_await axds::async_calculate_directory_checksum(source, std::move(quiet));
    fmt::print("Checksum without .gitignore: {}\n", without_gitignore);

    // Transfer with integrity verification (the saved checksum is reused), keeping the source.
    const fs::path backup = work / "backup" / "session";
    const axds::transfer_options verified{.workers = 4, .verify_integrity = true};
    co_await axds::async_transfer_directory(source, backup, verified);
    fmt::print("Transferred and verified: {}\n", backup.string());

    // Move: transfer, verify, then remove the source.
    const fs::path server = work / "server" / "session";
    axds::transfer_options move{.workers = 0, .verify_integrity = true, .remove_source = true};
    move.progress = [](const axds::transfer_progress& p) {
        fmt::print("  copied {}/{} files\n", p.files_done, p.files_total);
    };
    co_await axds::async_transfer_directory(source, server, std::move(move));
    fmt::print("Moved to {}; source {}\n", server.string(), fs::exists(source) ? "STILL THERE" : "removed");

    const axds::checksum_options no_save{.save_checksum = false};
    const std::string moved = co_await axds::async_calculate_directory_checksum(server, no_save);
    fmt::print("Checksum at the destination: {}\n", moved);

    // Deletion (parallel unlinks; a symlink would be removed, never followed).
    co_await axds::async_delete_directory(work / "backup");
    fmt::print("Deleted {}\n", (work / "backup").string());

    const bool ok = moved == checksum && without_gitignore != checksum && !fs::exists(source) &&
                    fs::is_directory(server / "processed_data") && !fs::exists(work / "backup");
    co_return ok ? 0 : 1;
}

}  // namespace

int main() {
    try {
        const axds_examples::scratch_directory scratch("axds-dirs-");
        return axds::block_on(run(scratch.path() / "work"));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "directory_pipeline failed: %s\n", e.what());
        return 1;
    }
}
