# FindLibYaml: the libyaml C library (libyaml-dev, pkg-config module yaml-0.1). Its emitter is the one PyYAML's
# CDumper drives, so YAML we write is byte-identical to the Python library's (spec §3.5). Provides LibYaml::yaml.
include(${CMAKE_CURRENT_LIST_DIR}/AxdsPkgConfigModule.cmake)
axds_pkg_config_module(LibYaml yaml-0.1 yaml yaml.h LibYaml::yaml)
