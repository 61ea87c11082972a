# axds_pkg_config_module(<Package> <pkg-config module> <library> <header> <Target>)
# Shared body of the find modules that wrap a pkg-config file (liburing, libxxhash, libyaml).
include_guard(GLOBAL)
macro(axds_pkg_config_module package module library header target)
  find_package(PkgConfig QUIET)
  if(PKG_CONFIG_FOUND)
    pkg_check_modules(PC_${package} QUIET ${module})
  endif()
  find_library(${package}_LIBRARY NAMES ${library} HINTS ${PC_${package}_LIBRARY_DIRS})
  find_path(${package}_INCLUDE_DIR NAMES ${header} HINTS ${PC_${package}_INCLUDE_DIRS})
  set(${package}_VERSION "${PC_${package}_VERSION}")
  include(FindPackageHandleStandardArgs)
  find_package_handle_standard_args(${package}
    REQUIRED_VARS ${package}_LIBRARY ${package}_INCLUDE_DIR VERSION_VAR ${package}_VERSION)
  if(${package}_FOUND AND NOT TARGET ${target})
    add_library(${target} UNKNOWN IMPORTED)
    set_target_properties(${target} PROPERTIES
      IMPORTED_LOCATION "${${package}_LIBRARY}"
      INTERFACE_INCLUDE_DIRECTORIES "${${package}_INCLUDE_DIR}")
  endif()
  mark_as_advanced(${package}_LIBRARY ${package}_INCLUDE_DIR)
endmacro()
