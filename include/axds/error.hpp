#pragma once

#include <stdexcept>
#include <string>
#include <system_error>

namespace axds {

// One type per Python exception class the spec's tests assert on (spec §1.3), each derived from the nearest
// standard exception. what() is the library's message, verbatim, and keeps the spec's anchor phrases.

/// Python ValueError: an argument or a file's content has the right type but an unacceptable value.
class value_error : public std::invalid_argument {
public:
    using std::invalid_argument::invalid_argument;
};

/// Python TypeError: a value of the wrong type (for example a YAML field holding a list where a number belongs).
class type_error : public std::invalid_argument {
public:
    using std::invalid_argument::invalid_argument;
};

/// Python KeyError: an unknown key, job or field.
class key_error : public std::out_of_range {
public:
    using std::out_of_range::out_of_range;
};

/// Python IndexError: an index outside an array's bounds.
class index_error : public std::out_of_range {
public:
    using std::out_of_range::out_of_range;
};

/// Python OverflowError: a number that does not fit the target type.
class overflow_error : public std::overflow_error {
public:
    using std::overflow_error::overflow_error;
};

/// Python RuntimeError.
class runtime_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// Python ConnectionError: an object that must be connected (shared memory) is not.
class connection_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// Python ChildProcessError: a worker died or failed.
class child_process_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// Python TimeoutError: a lock or a wait did not complete in time.
class timeout_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// dacite's MissingValueError: a required field is absent from a YAML document.
class missing_value_error : public value_error {
public:
    using value_error::value_error;
};

/// PyYAML's YAMLError: a document that is not valid YAML.
class yaml_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// Python OSError: an operating-system failure. code() holds the errno value in std::system_category();
/// what() is the library's message verbatim (std::system_error would append the errno text).
class os_error : public std::system_error {
public:
    os_error(std::error_code code, const std::string& message) : std::system_error(code), message_(message) {}

    [[nodiscard]] const char* what() const noexcept override { return message_.what(); }

private:
    std::runtime_error message_;  // nothrow-copyable string storage
};

/// ENOENT.
class file_not_found_error : public os_error {
public:
    using os_error::os_error;
};

/// EEXIST.
class file_exists_error : public os_error {
public:
    using os_error::os_error;
};

/// ENOTDIR.
class not_a_directory_error : public os_error {
public:
    using os_error::os_error;
};

/// EISDIR.
class is_a_directory_error : public os_error {
public:
    using os_error::os_error;
};

/// EACCES / EPERM.
class permission_error : public os_error {
public:
    using os_error::os_error;
};

/// Throws the os_error subclass matching `code`, as Python's OSError(errno, ...) picks its subclass:
/// ENOENT → file_not_found_error, EEXIST → file_exists_error, ENOTDIR → not_a_directory_error,
/// EISDIR → is_a_directory_error, EACCES/EPERM → permission_error, anything else → os_error.
[[noreturn]] void throw_os_error(std::error_code code, const std::string& message);

/// throw_os_error with `errno_value` in std::system_category().
[[noreturn]] void throw_errno(int errno_value, const std::string& message);

}  // namespace axds
