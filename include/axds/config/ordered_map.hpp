#pragma once
// An insertion-ordered map for YAML config fields: Python dicts keep the order their keys were inserted (and the
// order a YAML file lists them), std::map sorts. A config field of type ordered_map loads keys in document order and
// writes them back in that order, so a file saved by either language keeps its key order (no churn under version
// control). std::map remains supported and writes its keys sorted.

#include <cstddef>
#include <initializer_list>
#include <map>
#include <stdexcept>
#include <utility>
#include <vector>

namespace axds {

/// Keys in insertion order, each once; lookups through a sorted index (K needs operator<, as for std::map).
/// Assigning to an existing key keeps its position, as a Python dict does. Equality ignores order (dict semantics).
/// Iteration is read-only (a key changed in place would break the index): change values with operator[], at() or
/// insert_or_assign().
template <typename K, typename V>
class ordered_map {
public:
    using key_type = K;
    using mapped_type = V;
    using value_type = std::pair<K, V>;
    using const_iterator = typename std::vector<value_type>::const_iterator;
    using iterator = const_iterator;

    ordered_map() = default;

    ordered_map(std::initializer_list<value_type> items) {
        for (const auto& [key, value] : items) {
            insert_or_assign(key, value);
        }
    }

    [[nodiscard]] const_iterator begin() const noexcept { return items_.begin(); }

    [[nodiscard]] const_iterator end() const noexcept { return items_.end(); }

    [[nodiscard]] std::size_t size() const noexcept { return items_.size(); }

    [[nodiscard]] bool empty() const noexcept { return items_.empty(); }

    void clear() noexcept {
        items_.clear();
        index_.clear();
    }

    [[nodiscard]] const_iterator find(const K& key) const {
        const auto it = index_.find(key);
        return it == index_.end() ? items_.end() : items_.begin() + static_cast<std::ptrdiff_t>(it->second);
    }

    [[nodiscard]] bool contains(const K& key) const { return index_.contains(key); }

    /// The value of `key`; @throws std::out_of_range when absent.
    [[nodiscard]] V& at(const K& key) {
        const auto it = index_.find(key);
        if (it == index_.end()) {
            throw std::out_of_range("ordered_map::at: no such key");
        }
        return items_[it->second].second;
    }

    [[nodiscard]] const V& at(const K& key) const {
        const auto it = find(key);
        if (it == end()) {
            throw std::out_of_range("ordered_map::at: no such key");
        }
        return it->second;
    }

    /// The value of `key`, appended (default-constructed) at the end when absent.
    V& operator[](const K& key) {
        if (const auto it = index_.find(key); it != index_.end()) {
            return items_[it->second].second;
        }
        index_.emplace(key, items_.size());
        return items_.emplace_back(key, V{}).second;
    }

    /// Sets `key` to `value`: in place when present (the key keeps its position), else appended. True when appended.
    bool insert_or_assign(K key, V value) {
        if (const auto it = index_.find(key); it != index_.end()) {
            items_[it->second].second = std::move(value);
            return false;
        }
        index_.emplace(key, items_.size());
        items_.emplace_back(std::move(key), std::move(value));
        return true;
    }

    /// Removes `key` (the others keep their order); true when it was present.
    bool erase(const K& key) {
        const auto it = index_.find(key);
        if (it == index_.end()) {
            return false;
        }
        const std::size_t position = it->second;
        items_.erase(items_.begin() + static_cast<std::ptrdiff_t>(position));
        index_.erase(it);
        for (auto& [_, at] : index_) {
            at -= at > position ? 1 : 0;
        }
        return true;
    }

    /// Same keys with equal values, in any order (as Python dicts compare).
    friend bool operator==(const ordered_map& a, const ordered_map& b) {
        if (a.size() != b.size()) {
            return false;
        }
        for (const auto& [key, value] : a.items_) {
            const auto it = b.find(key);
            if (it == b.end() || !(it->second == value)) {
                return false;
            }
        }
        return true;
    }

private:
    std::vector<value_type> items_;
    std::map<K, std::size_t> index_;
};

}  // namespace axds
