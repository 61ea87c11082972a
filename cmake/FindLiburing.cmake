# FindLiburing: liburing 2.x ships only a pkg-config file. Provides Liburing::liburing.
include(${CMAKE_CURRENT_LIST_DIR}/AxdsPkgConfigModule.cmake)
axds_pkg_config_module(Liburing liburing uring liburing.h Liburing::liburing)
