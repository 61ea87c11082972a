// Runs one directory operation as an unprivileged user, for the permission tests (root bypasses permission checks,
// so as root the tests would prove nothing). Prints one line: "ok <result>" or "<error class>: <what()>".
//
//   ads_test_fs_worker checksum DIR
//   ads_test_fs_worker transfer SRC DST [verify]
//   ads_test_fs_worker delete DIR [io_uring]      (prints "deleted rings=N": the io_urings it holds open after)
//   ads_test_fs_worker walk DIR
//   ads_test_fs_worker chmod MODE PATH...     (octal; run as the unprivileged owner before an operation)
//   ads_test_fs_worker move-stall SRC DST N   (a verified move that prints "stalled" after removing N source files
//                                             and then waits to be killed)
//   ads_test_fs_worker copy-stall SRC DST     (a transfer that prints "stalled" when the first file's content is
//                                             copied, before it is renamed into place, and waits to be killed)
//   ads_test_fs_worker move-copy-stall SRC DST   (the same, for a verified move)
//
// Started as root, it first switches to uid/gid 65534 (nobody); started as another user, it stays that user. The
// *-stall commands (kill -9 tests) keep the user they were started as.

#include <axds/core/runtime.hpp>
#include <axds/error.hpp>
#include <axds/fs/checksum.hpp>
#include <axds/fs/delete.hpp>
#include <axds/fs/transfer.hpp>
#include <axds/fs/walk.hpp>
#include <axds/log/log_archive.hpp>

#include "detail/fault_hooks.hpp"

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <string>

#include <grp.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace {

constexpr uid_t nobody = 65534;

bool drop_privileges() {
    if (::geteuid() != 0) {
        return true;
    }
    // Dumpable again after the switch, so that /proc/self/fd stays readable to the process itself.
    return ::setgroups(0, nullptr) == 0 && ::setgid(nobody) == 0 && ::setuid(nobody) == 0 && ::geteuid() == nobody &&
           ::prctl(PR_SET_DUMPABLE, 1) == 0;
}

/// How many io_urings this process holds open (a CPU-pool thread's ring stays open with its thread).
int io_uring_descriptors() {
    int rings = 0;
    for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
        std::error_code ec;
        rings += std::filesystem::read_symlink(entry.path(), ec).string() == "anon_inode:[io_uring]" ? 1 : 0;
    }
    return rings;
}

/// Tells the test where it stands, then waits for its kill -9.
[[noreturn]] void stall() {
    std::puts("stalled");
    std::fflush(stdout);
    for (;;) {
        ::pause();
    }
}

bool is_stall_command(const std::string& command) {
    return command == "move-stall" || command == "copy-stall" || command == "move-copy-stall";
}

std::string run_stalled(int argc, char** argv) {
    const std::string command = argv[1];
    axds::detail::transfer_hooks hooks;
    axds::transfer_options options;
    if (command == "move-stall" && argc >= 5) {
        const auto after = static_cast<std::size_t>(std::stoul(argv[4]));
        options = {.verify_integrity = true, .remove_source = true};
        hooks.source_file_removed = [after](std::size_t removed) {
            if (removed >= after) {
                stall();
            }
        };
    } else if ((command == "copy-stall" || command == "move-copy-stall") && argc >= 4) {
        if (command == "move-copy-stall") {
            options = {.verify_integrity = true, .remove_source = true};
        }
        hooks.content_copied = [](const std::filesystem::path&) {
            stall();
        };
    } else {
        return "unknown command";
    }
    axds::block_on(axds::detail::async_transfer_directory(argv[2], argv[3], options, hooks));
    return "transferred";
}

std::string run(int argc, char** argv) {
    const std::string command = argv[1];
    if (is_stall_command(command)) {
        return run_stalled(argc, argv);
    }
    if (command == "checksum") {
        return axds::block_on(axds::async_calculate_directory_checksum(argv[2], {.save_checksum = false}));
    }
    if (command == "transfer" && argc >= 4) {
        const bool verify = argc > 4 && std::string(argv[4]) == "verify";
        axds::block_on(axds::async_transfer_directory(argv[2], argv[3], {.verify_integrity = verify}));
        return "transferred";
    }
    if (command == "delete") {
        const bool uring = argc > 3 && std::string(argv[3]) == "io_uring";
        axds::block_on(axds::async_delete_directory(argv[2], {.use_io_uring = uring}));
        return "deleted rings=" + std::to_string(io_uring_descriptors());
    }
    if (command == "assemble") {  // removes what it archived, as by default
        const axds::assemble_report report = axds::block_on(axds::async_assemble_log_archives(argv[2]));
        return "assembled entries=" + std::to_string(report.entries) +
               " skipped=" + std::to_string(report.skipped.size()) + " removed=" + std::to_string(report.removed);
    }
    if (command == "walk") {
        return std::to_string(axds::walk_directory(argv[2]).size());
    }
    if (command == "chmod" && argc >= 4) {
        const auto mode = static_cast<mode_t>(std::stoul(argv[2], nullptr, 8));
        for (int i = 3; i < argc; ++i) {
            if (::chmod(argv[i], mode) != 0) {
                return std::string("chmod failed: ") + argv[i];
            }
        }
        return "changed";
    }
    return "unknown command";
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 3) {
        std::puts("usage error");
        return 2;
    }
    if (!is_stall_command(argv[1]) && !drop_privileges()) {
        std::puts("cannot drop privileges");
        return 3;
    }
    try {
        std::printf("ok %s\n", run(argc, argv).c_str());
    } catch (const axds::permission_error& e) {
        std::printf("permission_error: %s\n", e.what());
    } catch (const axds::file_not_found_error& e) {
        std::printf("file_not_found_error: %s\n", e.what());
    } catch (const axds::os_error& e) {
        std::printf("os_error: %s\n", e.what());
    } catch (const axds::runtime_error& e) {
        std::printf("runtime_error: %s\n", e.what());
    } catch (const axds::value_error& e) {
        std::printf("value_error: %s\n", e.what());
    } catch (const std::exception& e) {
        std::printf("exception: %s\n", e.what());
    }
    return 0;
}
