#include <axds/error.hpp>

#include <cerrno>

namespace axds {

void throw_os_error(std::error_code code, const std::string& message) {
    if (code.category() == std::system_category() || code.category() == std::generic_category()) {
        switch (code.value()) {
            case ENOENT: throw file_not_found_error(code, message);
            case EEXIST: throw file_exists_error(code, message);
            case ENOTDIR: throw not_a_directory_error(code, message);
            case EISDIR: throw is_a_directory_error(code, message);
            case EACCES:
            case EPERM: throw permission_error(code, message);
            default: break;
        }
    }
    throw os_error(code, message);
}

void throw_errno(int errno_value, const std::string& message) {
    throw_os_error(std::error_code(errno_value, std::system_category()), message);
}

}  // namespace axds
