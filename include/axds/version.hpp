#pragma once

#define AXDS_VERSION_MAJOR 0
#define AXDS_VERSION_MINOR 1
#define AXDS_VERSION_PATCH 0

namespace axds {

/// The version of the ataraxis-data-structures Python library whose files axds reads and writes.
inline constexpr const char* compatible_python_version = "7.0.0";

}  // namespace axds
