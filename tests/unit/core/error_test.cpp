#include <axds/error.hpp>

#include <catch2/catch.hpp>

#include <cerrno>
#include <string>

TEST_CASE("throw_os_error picks the subclass from errno as Python's OSError does", "[core]") {
    const auto thrown_by = [](int value) -> std::string {
        try {
            axds::throw_errno(value, "message kept verbatim");
        } catch (const axds::file_not_found_error&) {
            return "file_not_found_error";
        } catch (const axds::file_exists_error&) {
            return "file_exists_error";
        } catch (const axds::not_a_directory_error&) {
            return "not_a_directory_error";
        } catch (const axds::is_a_directory_error&) {
            return "is_a_directory_error";
        } catch (const axds::permission_error&) {
            return "permission_error";
        } catch (const axds::os_error&) {
            return "os_error";
        }
        return "none";
    };
    CHECK(thrown_by(ENOENT) == "file_not_found_error");
    CHECK(thrown_by(EEXIST) == "file_exists_error");
    CHECK(thrown_by(ENOTDIR) == "not_a_directory_error");
    CHECK(thrown_by(EISDIR) == "is_a_directory_error");
    CHECK(thrown_by(EACCES) == "permission_error");
    CHECK(thrown_by(EPERM) == "permission_error");
    CHECK(thrown_by(ENOSPC) == "os_error");
}

TEST_CASE("os_error keeps the message verbatim and the errno in code()", "[core]") {
    try {
        axds::throw_errno(ENOSPC, "Unable to write entry 001_x.npy.");
        FAIL("no exception");
    } catch (const axds::os_error& e) {
        CHECK(std::string(e.what()) == "Unable to write entry 001_x.npy.");
        CHECK(e.code().value() == ENOSPC);
        CHECK(e.code().category() == std::system_category());
    }
}

TEST_CASE("library exception types derive from the nearest standard exception", "[core]") {
    CHECK_THROWS_AS(throw axds::value_error("x"), std::invalid_argument);
    CHECK_THROWS_AS(throw axds::index_error("x"), std::out_of_range);
    CHECK_THROWS_AS(throw axds::key_error("x"), std::out_of_range);
    CHECK_THROWS_AS(throw axds::timeout_error("x"), std::runtime_error);
    CHECK_THROWS_AS(throw axds::missing_value_error("x"), axds::value_error);
    CHECK_THROWS_AS(axds::throw_errno(ENOENT, "x"), std::system_error);
}
