# FindLibZip: libzip via pkg-config. Debian 12's libzip-config.cmake references /usr/bin/zipcmp and friends, which
# libzip-dev does not install, so find_package(libzip CONFIG) fails; the pkg-config file is reliable.
# Provides LibZip::zip.
include(${CMAKE_CURRENT_LIST_DIR}/AxdsPkgConfigModule.cmake)
axds_pkg_config_module(LibZip libzip zip zip.h LibZip::zip)
