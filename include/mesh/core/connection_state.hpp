#pragma once

#include "mesh/core/stats.hpp"
#include "mesh/detail/direct_send.hpp"
#include "mesh/detail/handler_slot.hpp"
#include "mesh/detail/ring.hpp"
#include "mesh/envelope.hpp"
#include "mesh/error.hpp"
#include "mesh/send_result.hpp"

#include <atomic>
#include <cstdint>
#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>

namespace mesh::detail {

// Everything a Mesh keeps about one connection. Senders on any thread touch only
// the outgoing ring and the atomics; the rest belongs to the reactor thread.
template <class Connection, class Config>
class ConnectionState {
public:
    ConnectionState(std::string id_, std::uint64_t key_, Connection&& connection_)
        : id(std::move(id_)), key(key_), connection(std::move(connection_)),
          direct_(connection_sends_directly(connection)) {}

    const std::string id;
    const std::uint64_t key;
    Connection connection;
    Ring<Payload, Config::outgoing_capacity, false, true> outgoing{false};  // senders -> reactor; parked at first
    Counters counters;
    HandlerSlot wake_slot;  // the posted writer wake-up lives here

    // ---- any thread ----

    // Queues the payload (moving it only on success). `wake` is set when the
    // writer was idle: the caller must then post one start to the reactor.
    SendResult try_send(Payload& payload, bool& wake) noexcept {
        wake = false;
        // One RMW both registers this sender and tells whether sending is closed.
        const std::uint32_t gate = gate_.fetch_add(1, std::memory_order_seq_cst);
        if (gate & closed_bit) {
            gate_.fetch_sub(1, std::memory_order_release);
            const errc error = close_error_.load(std::memory_order_acquire);
            return {error, error == errc::disconnected ? close_reason_ : std::error_code()};
        }
        if constexpr (has_direct_send<Connection>::value) {
            if (sends_directly()) return send_direct(payload);
        }
        if (gate & parked_bit) unpark();
        const bool pushed = outgoing.try_push(payload);
        gate_.fetch_sub(1, std::memory_order_release);
        if (!pushed) {
            Counters::add(counters.rejected_full, 1);
            return {errc::queue_full, {}};
        }
        // seq_cst pairs with the reactor's fence when it goes idle: either it sees
        // this message or we see write_active_ == false and wake it.
        std::atomic_thread_fence(std::memory_order_seq_cst);
        wake = !write_active_.load(std::memory_order_relaxed) &&
               !write_active_.exchange(true, std::memory_order_acq_rel);
        return {};
    }

    // Messages accepted and not yet taken on. With direct send the peer's queue is the
    // outgoing queue; the gate keeps the reactor from closing the connection meanwhile.
    std::size_t queue_depth() noexcept {
        if constexpr (has_direct_send<Connection>::value) {
            if (sends_directly()) {
                std::size_t depth = 0;
                if (!(gate_.fetch_add(1, std::memory_order_seq_cst) & closed_bit))
                    depth = connection.direct_queue_depth();
                gate_.fetch_sub(1, std::memory_order_release);
                return depth;
            }
        }
        return outgoing.size();
    }

    // ---- reactor thread ----

    // After this returns no sender can push any more, so what the ring holds is final.
    // A connection that died and is then removed (or shut down) must report what
    // send by id reports, not_found (shut_down), so those replace disconnected.
    void close_for_send(errc error, std::error_code reason) {
        if (gate_.load(std::memory_order_relaxed) & closed_bit) {
            if (error != errc::disconnected && close_error_.load(std::memory_order_relaxed) == errc::disconnected)
                close_error_.store(error, std::memory_order_release);
            return;
        }
        close_error_.store(error, std::memory_order_relaxed);
        close_reason_ = reason;  // written once, before closed_bit publishes it
        gate_.fetch_or(closed_bit, std::memory_order_seq_cst);
        // A sender between its check and its push finishes in a few instructions.
        while ((gate_.load(std::memory_order_acquire) & count_mask) != 0) std::this_thread::yield();
    }

    // Gives an idle connection's ring storage back; the next send allocates it again.
    // Only when no sender is inside and the writer is idle with nothing queued.
    void park_if_idle() {
        const auto out = counters.messages_out.load(std::memory_order_relaxed);
        const bool quiet = out == out_at_last_check_;
        out_at_last_check_ = out;
        if (!quiet || writing || (gate_.load(std::memory_order_acquire) & parked_bit) || !outgoing.empty()) return;
        std::lock_guard<std::mutex> lock(park_mutex_);
        std::uint32_t expected = 0;
        if (gate_.compare_exchange_strong(expected, parked_bit, std::memory_order_acq_rel)) outgoing.release();
    }

    // Called when a write completed and the ring looked empty. True if the writer
    // must keep going because a message slipped in.
    bool writer_goes_idle() noexcept {
        write_active_.store(false, std::memory_order_seq_cst);
        std::atomic_thread_fence(std::memory_order_seq_cst);
        return !outgoing.empty() && !write_active_.exchange(true, std::memory_order_acq_rel);
    }

    std::size_t discard_outgoing() noexcept {
        std::size_t n = 0;
        Payload dropped;
        while (outgoing.try_pop(dropped)) ++n;
        // A pending write may still succeed: its messages count only once it has failed.
        if (!writing) {
            n += in_flight;
            in_flight = 0;
        }
        Counters::add(counters.discarded, n);
        return n;
    }

    bool busy() const noexcept { return reading || writing; }
    bool ending() const noexcept { return !alive || removing || closing; }

    // Reactor-only state, on its own cache line: the reactor writes it per batch and
    // must not invalidate the line the senders use.
    alignas(64) bool attached = false;
    bool alive = true;      // false once the peer went away or an I/O error ended it
    bool removing = false;  // remove() asked for it back
    bool closing = false;   // the mesh shuts down
    bool settled = false;   // I/O released; nothing more happens on the reactor
    bool reading = false;   // an async_fill is pending
    bool writing = false;   // an async_write_batch is pending
    std::size_t in_flight = 0;         // messages of the pending write
    bool write_ended = false;          // the peer closed: nothing more is written, reads go on
    std::size_t discarded_early = 0;   // discarded when writing ended, reported with the event
    std::optional<Envelope> held;      // received, waiting for room in the incoming queue
    std::promise<void>* removal = nullptr;

private:
    static constexpr std::uint32_t closed_bit = 0x80000000u;
    static constexpr std::uint32_t parked_bit = 0x40000000u;  // the ring has no storage
    static constexpr std::uint32_t count_mask = parked_bit - 1;

    // Inproc always sends directly, a multi connection when it holds an inproc one.
    bool sends_directly() const noexcept {
        if constexpr (always_sends_directly<Connection>::value) return true;
        else return direct_;
    }

    // The sender is registered in the gate; this call takes it out.
    SendResult send_direct(Payload& payload) noexcept {
        const std::size_t bytes = payload.size();
        const std::error_code ec = connection.try_send_direct(payload, Config::outgoing_capacity);
        gate_.fetch_sub(1, std::memory_order_release);
        if (!ec) {
            Counters::add(counters.messages_out, 1);
            Counters::add(counters.bytes_out, bytes);
            return {};
        }
        if (ec == errc::queue_full) Counters::add(counters.rejected_full, 1);
        if (ec == errc::queue_full || ec == errc::message_too_large) return {ec, {}};
        return {errc::disconnected, ec};
    }

    void unpark() {
        std::lock_guard<std::mutex> lock(park_mutex_);
        if (gate_.load(std::memory_order_acquire) & parked_bit) {
            outgoing.allocate();
            gate_.fetch_and(~parked_bit, std::memory_order_release);
        }
    }

    // Sender-side state, on a cache line of its own.
    alignas(64) std::atomic<std::uint32_t> gate_{parked_bit};  // senders inside try_send, plus flags
    const bool direct_;  // decided once: a connection never changes kind
    std::atomic<bool> write_active_{false};
    std::atomic<errc> close_error_{errc::disconnected};
    std::error_code close_reason_;
    std::mutex park_mutex_;  // allocation and release of the ring's storage
    std::uint64_t out_at_last_check_ = 0;  // reactor
};

} // namespace mesh::detail
