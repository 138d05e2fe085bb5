#pragma once

#include "mesh/version.hpp"

#include <atomic>
#include <cstddef>
#include <string>
#include <utility>

MESH_NAMESPACE_BEGIN
namespace detail {

// A connection's id, shared by the connection and by each of its received messages
// still waiting in the incoming queue, so that no message copies the string and a
// removed connection's queued messages still name it. The count is taken in blocks
// (IdSource) and given back in runs (IdRun): its cache line moves between the
// reactor's core and a receiver's once per block or per batch, not once per message.
class SharedId {
public:
    explicit SharedId(std::string text) : text_(std::move(text)) {}
    SharedId(const SharedId&) = delete;
    SharedId& operator=(const SharedId&) = delete;

    const std::string& text() const noexcept { return text_; }

    void acquire(std::size_t n) noexcept { refs_.fetch_add(n, std::memory_order_relaxed); }

    // acq_rel: every holder's reads of the text happen before the last one deletes it.
    void release(std::size_t n) noexcept {
        if (refs_.fetch_sub(n, std::memory_order_acq_rel) == n) delete this;
    }

private:
    ~SharedId() = default;

    std::atomic<std::size_t> refs_{1};
    const std::string text_;
};

// One reference, as a queued message holds it.
class IdRef {
public:
    IdRef() = default;
    explicit IdRef(SharedId* id) noexcept : id_(id) {}  // adopts one reference
    IdRef(IdRef&& other) noexcept : id_(std::exchange(other.id_, nullptr)) {}
    IdRef& operator=(IdRef&& other) noexcept {
        if (this != &other) {
            reset();
            id_ = std::exchange(other.id_, nullptr);
        }
        return *this;
    }
    IdRef(const IdRef&) = delete;
    IdRef& operator=(const IdRef&) = delete;
    ~IdRef() { reset(); }

    // Hands the reference to the caller, who must release it.
    SharedId* detach() noexcept { return std::exchange(id_, nullptr); }

    void reset() noexcept {
        if (SharedId* id = std::exchange(id_, nullptr)) id->release(1);
    }

private:
    SharedId* id_ = nullptr;
};

// The connection's side, used by the reactor thread only: hands out one reference
// per message from a block of them taken with one atomic add.
class IdSource {
public:
    explicit IdSource(std::string text) : id_(new SharedId(std::move(text))) {}
    IdSource(const IdSource&) = delete;
    IdSource& operator=(const IdSource&) = delete;
    ~IdSource() { id_->release(1 + credit_); }  // its own and the unspent ones

    const std::string& text() const noexcept { return id_->text(); }

    IdRef next() noexcept {
        if (credit_ == 0) {
            id_->acquire(block);
            credit_ = block;
        }
        --credit_;
        return IdRef(id_);
    }

private:
    static constexpr std::size_t block = 64;

    SharedId* const id_;
    std::size_t credit_ = 0;
};

// The receiver's side: references of consecutive messages from one connection,
// given back together when the run ends.
class IdRun {
public:
    IdRun() = default;
    IdRun(const IdRun&) = delete;
    IdRun& operator=(const IdRun&) = delete;
    ~IdRun() { end(); }

    // Takes over one reference to `id`.
    void add(SharedId* id) noexcept {
        if (id == id_) {
            ++length_;
            return;
        }
        end();
        id_ = id;
        length_ = 1;
    }

    void end() noexcept {
        if (id_) std::exchange(id_, nullptr)->release(length_);
        length_ = 0;
    }

private:
    SharedId* id_ = nullptr;
    std::size_t length_ = 0;
};

} // namespace detail
MESH_NAMESPACE_END
