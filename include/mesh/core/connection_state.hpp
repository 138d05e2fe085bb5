#pragma once

#include "mesh/version.hpp"
#include "mesh/core/dial_watch.hpp"
#include "mesh/core/incoming_queue.hpp"
#include "mesh/core/shared_id.hpp"
#include "mesh/core/stats.hpp"
#include "mesh/detail/direct_send.hpp"
#include "mesh/detail/handler_slot.hpp"
#include "mesh/detail/indexed_list.hpp"
#include "mesh/detail/ring.hpp"
#include "mesh/detail/waiters.hpp"
#include "mesh/envelope.hpp"
#include "mesh/error.hpp"
#include "mesh/send_result.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

MESH_NAMESPACE_BEGIN
namespace detail {

// Where a connection is in its life on the reactor. Every change is one of the
// transitions named in MeshCore (attach, end_writes, die, begin_remove, close_all,
// settle); the state alone decides what an event (read done, write done, error,
// senders left) does next.
enum class Phase : std::uint8_t {
    attaching,    // added; the reactor has not taken it on yet
    open,         // reading and writing
    write_ended,  // the peer closed: nothing more is written, reading goes on to the end
    dying,        // ended by itself; waits for pending operations, then reports the event
    removing,     // remove() wants it back; waits for pending operations, then hands it over
    closing,      // the mesh shuts down; waits for pending operations, then closes it
    settled,      // I/O and buffers released; nothing more happens on the reactor
};

// What a sender must tell the reactor after try_send: each is at most one post.
struct SendNotice {
    bool wake_writer = false;   // the writer was idle: post one start
    bool senders_left = false;  // the last sender left a closed gate: the ring is final now
};

// An async_send waiting for room in its connection's queue.
struct SendWaiter {
    std::unique_ptr<AsyncOp<>> op;
    Payload payload;
    void fail(std::error_code ec) { op->complete(ec); }
};

// Everything a Mesh keeps about one connection. Senders on any thread touch only
// the outgoing ring and the atomics; the rest belongs to the reactor thread.
template <class Connection, class Config>
class ConnectionState {
public:
    ConnectionState(std::string id_, std::uint64_t key_, Connection&& connection_, bool accepted_)
        : id_source(std::move(id_)), id(id_source.text()), key(key_),
          accepted(accepted_), connection(std::move(connection_)), direct_(connection_sends_directly(connection)) {}

    IdSource id_source;  // what received messages carry (reactor thread)
    const std::string& id;
    const std::uint64_t key;
    const bool accepted;  // came from accept_from: forgotten (reaped) when it dies
    Connection connection;
    Ring<Payload, Config::outgoing_capacity, false, true> outgoing{false};  // senders -> reactor; parked at first
    Counters counters;
    HandlerSlot wake_slot;   // the posted writer wake-up lives here
    HandlerSlot leave_slot;  // the one "senders left" notice lives here
    Waiters<SendWaiter> send_waiters;  // async_sends waiting for room (or a redial), in order
    bool handed_over = false;  // send_waiters' lock: a dialer's next connection took its waiting sends
    std::atomic<bool> room_wanted{false};  // a watch for room (direct sends) is posted

    // ---- any thread ----

    // Queues the payload (moving it only on success). The notice says what the
    // caller must post to the reactor. A refusal for a full queue is counted unless
    // `retry` (a waiting async_send trying again).
    SendResult try_send(Payload& payload, SendNotice& notice, bool retry = false) noexcept {
        // One RMW both registers this sender and tells whether sending is closed.
        const std::uint32_t gate = gate_.fetch_add(1, std::memory_order_seq_cst);
        if (gate & closed_bit) {
            notice.senders_left = leave();
            const errc error = close_error_.load(std::memory_order_acquire);
            return {error, error == errc::disconnected ? close_reason_ : std::error_code()};
        }
        if constexpr (has_direct_send<Connection>::value) {
            if (sends_directly()) return send_direct(payload, notice, retry);
        }
        const bool room = !(gate & parked_bit) || unpark();
        const bool pushed = room && outgoing.try_push(payload);
        // Counted before leaving: once the gate is empty the reactor may retire the counters.
        if (!pushed && !retry) Counters::add(counters.rejected_full, 1);
        notice.senders_left = leave();
        if (!pushed) return {errc::queue_full, {}};
        // seq_cst pairs with the reactor's fence when it goes idle: either it sees
        // this message or we see write_active_ == false and wake it.
        std::atomic_thread_fence(std::memory_order_seq_cst);
        notice.wake_writer = !write_active_.load(std::memory_order_relaxed) &&
                             !write_active_.exchange(true, std::memory_order_acq_rel);
        return {};
    }

    // A wake-up could not be posted (out of memory): the writer is idle again, and the
    // reactor's sweep starts it for what is queued.
    void wake_failed() noexcept { write_active_.store(false, std::memory_order_seq_cst); }

    // Messages accepted and not yet taken on. With direct send the peer's queue is the
    // outgoing queue; the gate keeps the reactor from closing the connection meanwhile.
    std::size_t queue_depth(bool& senders_left) noexcept {
        if constexpr (has_direct_send<Connection>::value) {
            if (sends_directly()) {
                std::size_t depth = 0;
                if (!(gate_.fetch_add(1, std::memory_order_seq_cst) & closed_bit))
                    depth = connection.direct_queue_depth();
                senders_left = leave();
                return depth;
            }
        }
        return outgoing.size();
    }

    // ---- reactor thread ----

    // Closes the gate: no sender pushes after this. True when none was inside, so what
    // the ring holds is final now; otherwise the last sender out reports (SendNotice::
    // senders_left) and the ring is final once that notice runs. Nothing waits here.
    // A connection that died and is then removed (or shut down) must report what send
    // by id reports, not_found (shut_down), so those replace disconnected.
    bool close_for_send(errc error, std::error_code reason) {
        if (gate_.load(std::memory_order_relaxed) & closed_bit) {
            if (error != errc::disconnected && close_error_.load(std::memory_order_relaxed) == errc::disconnected)
                close_error_.store(error, std::memory_order_release);
            return !senders_inside;
        }
        close_error_.store(error, std::memory_order_relaxed);
        close_reason_ = reason;  // written once, before closed_bit publishes it
        const std::uint32_t before = gate_.fetch_or(closed_bit | leave_bit, std::memory_order_seq_cst);
        // Whoever clears leave_bit owns the notice: we do when nobody is inside; else
        // the last sender out does (leave()), and posts it.
        senders_inside = (before & count_mask) != 0 || !take_leave_bit();
        return !senders_inside;
    }

    // Inproc always sends directly, a multi connection when it holds an inproc one.
    bool sends_directly() const noexcept {
        if constexpr (always_sends_directly<Connection>::value) return true;
        else return direct_;
    }

    // True once sending is closed (the connection ended, was removed, or the mesh shuts down).
    bool send_closed() const noexcept { return gate_.load(std::memory_order_acquire) & closed_bit; }

    // Once sending is closed: what a send is told from now on.
    std::error_code close_error() const noexcept { return close_error_.load(std::memory_order_acquire); }

    // Gives an idle connection's ring storage back; the next send allocates it again.
    // Once the CAS has set parked_bit with no sender inside, a sender that enters waits
    // in unpark() for park_mutex_, so the emptiness seen below is final.
    // True when the ring has no storage now.
    bool park_if_idle() {
        const auto out = counters.messages_out.load(std::memory_order_relaxed);
        const bool quiet = out == out_at_last_check_;
        out_at_last_check_ = out;
        if (gate_.load(std::memory_order_acquire) & parked_bit) return true;
        if (!quiet || write_pending) return false;
        std::lock_guard<std::mutex> lock(park_mutex_);
        std::uint32_t expected = 0;
        if (!gate_.compare_exchange_strong(expected, parked_bit, std::memory_order_acq_rel)) return false;
        if (outgoing.empty()) {
            outgoing.release();
            return true;
        }
        gate_.fetch_and(~parked_bit, std::memory_order_release);  // a message arrived first
        return false;
    }

    // True when the writer is idle while a message is ready: a wake-up was lost.
    bool writer_stalled() const noexcept {
        return !write_active_.load(std::memory_order_acquire) && outgoing.front_ready();
    }
    bool claim_writer() noexcept { return !write_active_.exchange(true, std::memory_order_acq_rel); }

    // Called when a write completed and no message was ready. True if the writer
    // must keep going because a message slipped in. A cell claimed but not yet filled
    // does not count: its sender sees write_active_ == false after filling it and
    // wakes the writer itself, so the reactor never spins waiting for it.
    bool writer_goes_idle() noexcept {
        write_active_.store(false, std::memory_order_seq_cst);
        std::atomic_thread_fence(std::memory_order_seq_cst);
        return outgoing.front_ready() && !write_active_.exchange(true, std::memory_order_acq_rel);
    }

    // Drops what the ring holds and counts it. Only once the gate is closed and the
    // senders have left is the count final.
    std::size_t discard_queued() noexcept {
        std::size_t n = 0;
        Payload dropped;
        while (outgoing.try_pop(dropped)) ++n;
        Counters::add(counters.discarded, n);
        return n;
    }

    // The messages of a write that failed.
    std::size_t discard_in_flight() noexcept {
        const std::size_t n = in_flight;
        in_flight = 0;
        Counters::add(counters.discarded, n);
        return n;
    }

    bool ending() const noexcept {
        return phase == Phase::dying || phase == Phase::removing || phase == Phase::closing;
    }
    bool reads() const noexcept { return phase == Phase::open || phase == Phase::write_ended; }
    // Nothing outstanding that could still touch the connection or the ring.
    bool quiet() const noexcept { return !read_pending && !write_pending && !room_pending && !senders_inside; }

    // Reactor-only state, on its own cache line: the reactor writes it per batch and
    // must not invalidate the line the senders use.
    alignas(64) Phase phase = Phase::attaching;
    bool read_pending = false;    // an async_fill is outstanding
    bool write_pending = false;   // an async_write_batch is outstanding
    bool room_pending = false;    // an async_room (direct sends) is outstanding
    bool senders_inside = false;  // the gate closed on senders; their notice is on its way
    std::error_code died;         // why it ended by itself; reported when it settles
    std::size_t in_flight = 0;    // messages of the pending write
    std::optional<Incoming> held;  // received, waiting for room in the incoming queue
    std::shared_ptr<DialWatch> watch;  // the dialer that added it, told when it settles
    std::promise<void>* removal = nullptr;
    std::size_t sweep_slot = not_listed;    // where MeshCore's sweep list holds it
    std::size_t partial_slot = not_listed;  // where MeshCore's list of unfinished frames holds it
    std::chrono::steady_clock::time_point frame_since;  // listed there since
    // What the sweep last saw of the connection's reads and writes, and when it changed.
    std::uint64_t read_mark = 0, write_mark = 0;
    std::chrono::steady_clock::time_point read_seen, write_seen;

private:
    static constexpr std::uint32_t closed_bit = 0x80000000u;
    static constexpr std::uint32_t parked_bit = 0x40000000u;  // the ring has no storage
    static constexpr std::uint32_t leave_bit = 0x20000000u;   // closed with senders inside
    static constexpr std::uint32_t count_mask = leave_bit - 1;

    // Takes the sender out of the gate. True when it was the last one inside a gate
    // that closed on it, and it took the duty to tell the reactor.
    bool leave() noexcept {
        const std::uint32_t before = gate_.fetch_sub(1, std::memory_order_acq_rel);
        return (before & leave_bit) && (before & count_mask) == 1 && take_leave_bit();
    }
    bool take_leave_bit() noexcept {
        return gate_.fetch_and(~leave_bit, std::memory_order_acq_rel) & leave_bit;
    }


    // The sender is registered in the gate; this call takes it out.
    SendResult send_direct(Payload& payload, SendNotice& notice, bool retry) noexcept {
        const std::size_t bytes = payload.size();
        const std::error_code ec = connection.try_send_direct(payload, Config::outgoing_capacity);
        // Counted before leaving: once the gate is empty the reactor may retire the counters.
        if (!ec) {
            Counters::add(counters.messages_out, 1);
            Counters::add(counters.bytes_out, bytes);
        } else if (ec == errc::queue_full && !retry) {
            Counters::add(counters.rejected_full, 1);
        }
        notice.senders_left = leave();
        if (!ec) return {};
        if (ec == errc::queue_full || ec == errc::message_too_large) return {ec, {}};
        return {errc::disconnected, ec};
    }

    // False when the ring's storage cannot be allocated: the send is refused as full.
    bool unpark() noexcept {
        std::lock_guard<std::mutex> lock(park_mutex_);
        if (!(gate_.load(std::memory_order_acquire) & parked_bit)) return true;
        if (!outgoing.allocate()) return false;
        gate_.fetch_and(~parked_bit, std::memory_order_release);
        return true;
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

} // namespace detail
MESH_NAMESPACE_END
