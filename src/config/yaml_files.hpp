#pragma once
// YAML file plumbing private to src/ (the typed configs and the processing tracker use it); the public
// <axds/config/yaml_config.hpp> declares only what its templates (to_yaml, from_yaml) need.

#include <axds/config/yaml_value.hpp>

#include <filesystem>
#include <string>

namespace axds::detail {

/// emit_yaml for a document written to `file`: errors name the file and the field (value_error).
std::string emit_yaml_for_file(const yaml_value& document, const std::filesystem::path& file);
/// write_yaml_file for an already emitted document. `sync_directory` false skips the directory fsync after the
/// rename (for a caller that knows, from sys::directory_needs_sync, that it does nothing there).
void write_yaml_text(const std::filesystem::path& file, const std::string& text, bool sync_directory = true);
/// The file's bytes (os_error family naming the file on failure).
std::string read_yaml_text(const std::filesystem::path& file);

}  // namespace axds::detail
