#pragma once

#include <catch2/catch.hpp>

#include <string>

namespace axds::test {

/// Matches an exception whose what() contains `fragment` once whitespace runs are folded (spec §1.3: the Python
/// library wraps messages at 120 columns; anchors are compared after normalising whitespace).
class message_contains_matcher : public Catch::MatcherBase<std::exception> {
public:
    explicit message_contains_matcher(std::string fragment) : fragment_(std::move(fragment)) {}

    bool match(const std::exception& e) const override;

    std::string describe() const override { return "message contains \"" + fragment_ + "\""; }

private:
    std::string fragment_;
};

inline message_contains_matcher message_contains(std::string fragment) {
    return message_contains_matcher(std::move(fragment));
}

}  // namespace axds::test
