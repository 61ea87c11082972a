include_guard(GLOBAL)
# axds_require(<Package> <debian-package> [find_package args...]): find_package, or stop configure with a message
# naming the Debian package that provides it.
macro(axds_require package debian)
  find_package(${package} ${ARGN} QUIET)
  if(NOT ${package}_FOUND)
    message(FATAL_ERROR
      "axds: required dependency '${package}' was not found. Install it with: apt-get install ${debian} "
      "(or run cmake/install-deps.sh, which installs every dependency).")
  endif()
  message(STATUS "axds: found ${package} ${${package}_VERSION}")
endmacro()
