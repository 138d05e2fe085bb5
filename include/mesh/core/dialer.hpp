#pragma once

#include "mesh/version.hpp"
#include "mesh/core/dial_watch.hpp"
#include "mesh/core/events.hpp"
#include "mesh/error.hpp"

#include <algorithm>
#include <chrono>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <utility>

MESH_NAMESPACE_BEGIN

/// How a dialer (Mesh::dial) waits between attempts: the first wait is
/// `initial_backoff`, each next one `multiplier` times longer, up to `max_backoff`;
/// each is scaled by a random factor in [1 - jitter, 1 + jitter], so that many
/// dialers do not come back at once. A connection made resets it.
struct DialOptions {
    std::chrono::milliseconds initial_backoff{100};  ///< the first wait
    std::chrono::milliseconds max_backoff{30000};    ///< the longest wait
    double multiplier = 2.0;                         ///< growth from one wait to the next (>= 1)
    double jitter = 0.2;                             ///< random spread of each wait, 0 to 1
};

/// Keeps an outgoing connection alive under a fixed id (Mesh::dial makes it). It
/// runs its own thread: it connects (a blocking connect, within the transport's
/// connect timeout), adds the connection, and when that connection ends waits and
/// connects again, with backoff after each failure. Each attempt that fails is a
/// ConnectionEvent::Kind::dial_failed (with the reason), each connection made a
/// Kind::dialed; the end of one is the usual Kind::disconnected. While it is down,
/// sends to the id get disconnected with the reason the last connection ended, and
/// async_sends wait for the next connection (until the dialer stops: disconnected).
/// Stopping (stop, or destroying it) leaves the last connection in the mesh.
class Dialer {
public:
    /// Dials nothing.
    Dialer() = default;
    /// Moves the dialer; `other` then dials nothing.
    Dialer(Dialer&&) noexcept = default;
    /// Stops this one, then takes over `other`.
    Dialer& operator=(Dialer&& other) noexcept {
        if (this != &other) {
            stop();
            watch_ = std::move(other.watch_);
            thread_ = std::move(other.thread_);
            id_ = std::move(other.id_);
        }
        return *this;
    }
    /// Stops (see stop).
    ~Dialer() { stop(); }

    /// Stops dialing and joins the thread: at once during a wait, or once a connect
    /// in progress returns (within the transport's connect timeout).
    void stop() {
        if (watch_) watch_->stop();
        if (thread_.joinable()) thread_.join();
    }
    /// The id it keeps a connection under.
    const std::string& id() const noexcept { return id_; }

    /// Used by Mesh::dial.
    template <class Core, class Transport>
    static Dialer start(std::shared_ptr<Core> core, Transport transport, std::string endpoint, std::string id,
                        DialOptions options) {
        Dialer dialer;
        dialer.id_ = id;
        dialer.watch_ = std::make_shared<detail::DialWatch>();
        dialer.thread_ = std::thread(run<Core, Transport>, std::move(core), std::move(transport), std::move(endpoint),
                                     std::move(id), options, dialer.watch_);
        return dialer;
    }

private:
    template <class Core, class Transport>
    static void run(std::shared_ptr<Core> core, Transport transport, const std::string& endpoint,
                    const std::string& id, DialOptions options, const std::shared_ptr<detail::DialWatch>& watch) {
        std::weak_ptr<typename Core::State> previous;
        keep_dialing(*core, transport, endpoint, id, options, watch, previous);
        core->end_dial(previous);  // async_sends waiting for a next connection complete
    }

    template <class Core, class Transport>
    static void keep_dialing(Core& core, Transport& transport, const std::string& endpoint, const std::string& id,
                             DialOptions options, const std::shared_ptr<detail::DialWatch>& watch,
                             std::weak_ptr<typename Core::State>& previous) {
        std::minstd_rand random(std::random_device{}());
        const double jitter = std::clamp(options.jitter, 0.0, 1.0);
        std::uniform_real_distribution<double> spread(1.0 - jitter, 1.0 + jitter);
        auto backoff = options.initial_backoff;
        while (!watch->stopped() && !core.is_shut_down()) {
            std::error_code ec;
            auto connection = transport.connect(endpoint, ec);
            if (!ec) ec = core.redial(std::move(connection), id, previous, watch);
            if (ec == errc::shut_down) return;
            core.dial_event(ec ? ConnectionEvent::Kind::dial_failed : ConnectionEvent::Kind::dialed, id, ec);
            if (!ec) {
                backoff = options.initial_backoff;
                if (!watch->wait_settled()) return;
            }
            const auto wait = std::chrono::duration<double, std::milli>(backoff.count() * spread(random));
            if (!watch->pause(std::chrono::duration_cast<std::chrono::steady_clock::duration>(wait))) return;
            if (ec) {
                const double grown = static_cast<double>(backoff.count()) * std::max(1.0, options.multiplier);
                backoff = std::chrono::milliseconds(static_cast<std::chrono::milliseconds::rep>(
                    std::min(grown, static_cast<double>(options.max_backoff.count()))));
            }
        }
    }

    std::shared_ptr<detail::DialWatch> watch_;
    std::thread thread_;
    std::string id_;
};

MESH_NAMESPACE_END
