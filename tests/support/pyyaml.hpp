#pragma once
// The Python library's YAML writer, reproduced with Debian's python3-yaml: the interop tests compare our bytes with
// what PyYAML writes and read what it writes.

#include <filesystem>
#include <string>

namespace axds::test {

/// The keyword arguments the Python library's YamlConfig passes to yaml.dump (with Dumper=yaml.CDumper).
inline constexpr const char* pyyaml_dump_options =
    "default_flow_style=False, sort_keys=False, allow_unicode=False, indent=10, width=200, explicit_start=True, "
    "explicit_end=True";

/// Writes `file` as the Python library does; `data_expression` is a Python expression. Throws with python3's output
/// when the script fails.
void pyyaml_write(const std::filesystem::path& file, const std::string& data_expression);

/// What PyYAML's CSafeLoader reads from `file`, dumped again with the Python library's options; shared objects
/// (aliases) are written out in full, as emit_yaml writes them. Throws with python3's output when PyYAML refuses.
std::string pyyaml_redump(const std::filesystem::path& file);

/// As above, for a document given as text.
std::string pyyaml_redump_text(const std::string& document);

}  // namespace axds::test
