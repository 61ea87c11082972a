# FindXxHash: libxxhash-dev ships only a pkg-config file. Provides XxHash::xxhash.
include(${CMAKE_CURRENT_LIST_DIR}/AxdsPkgConfigModule.cmake)
axds_pkg_config_module(XxHash libxxhash xxhash xxhash.h XxHash::xxhash)
