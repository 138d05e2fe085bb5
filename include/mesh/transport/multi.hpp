#pragma once

#include "mesh/version.hpp"
#include "mesh/detail/throw_error.hpp"
#include "mesh/error.hpp"
#include "mesh/platform.hpp"
#include "mesh/transport/inproc.hpp"
#include "mesh/transport/multi_connection.hpp"
#include "mesh/transport/multi_listener.hpp"
#include "mesh/transport/tcp.hpp"
#include "mesh/transport/unix.hpp"
#if MESH_HAS_TLS
#include "mesh/transport/tls.hpp"
#endif

#include <cstddef>
#include <string>
#include <string_view>
#include <system_error>
#include <tuple>
#include <utility>

MESH_NAMESPACE_BEGIN

/// Several transports behind one, chosen by the endpoint's scheme: connect and listen
/// go to the first member, in list order, whose accepts() is true, so the order
/// decides who takes a bare address. Splinter's MultiTransport.
template <class... Transports>
class BasicMulti {
    static_assert(sizeof...(Transports) > 0, "BasicMulti needs at least one transport");

public:
    using connection_type = MultiConnection<typename Transports::connection_type...>;  ///< holds any member's connection
    using listener_type = MultiListener<typename Transports::listener_type...>;        ///< holds any member's listener

    /// Each member default-constructed.
    BasicMulti() = default;
    /// Takes the members given.
    explicit BasicMulti(Transports... transports) : members_(std::move(transports)...) {}

    /// The member of type T, for instance to reach its options.
    template <class T>
    T& get() noexcept { return std::get<T>(members_); }
    /// The member of type T, read-only.
    template <class T>
    const T& get() const noexcept { return std::get<T>(members_); }

    /// True when some member accepts the endpoint.
    static bool accepts(std::string_view endpoint) { return (Transports::accepts(endpoint) || ...); }

    /// Connects with the member that takes the endpoint. errc::unknown_scheme when no
    /// member accepts the endpoint; the throwing form says so with Splinter's message:
    /// Unknown protocol `"<endpoint>"`. Otherwise the member's errors. The first form
    /// throws std::system_error; the second sets `ec`.
    ///@{
    connection_type connect(std::string_view endpoint) {
        return or_throw("connect", endpoint, [&](std::error_code& ec) { return connect(endpoint, ec); });
    }
    connection_type connect(std::string_view endpoint, std::error_code& ec) {
        return dispatch<connection_type, 0>(endpoint, ec, [&](auto& member) { return member.connect(endpoint, ec); });
    }
    ///@}

    /// Listens with the member that takes `bind`; errors as connect's (unknown_scheme,
    /// then the member's). The first form throws std::system_error; the second sets `ec`.
    ///@{
    listener_type listen(std::string_view bind) {
        return or_throw("listen", bind, [&](std::error_code& ec) { return listen(bind, ec); });
    }
    listener_type listen(std::string_view bind, std::error_code& ec) {
        return dispatch<listener_type, 0>(bind, ec, [&](auto& member) { return member.listen(bind, ec); });
    }
    ///@}

private:
    // Calls call(member) on the first member from the I-th on that accepts the endpoint.
    template <class Result, std::size_t I, class Call>
    Result dispatch(std::string_view endpoint, std::error_code& ec, Call&& call) {
        if constexpr (I == sizeof...(Transports)) {
            ec = errc::unknown_scheme;
            return Result();
        } else {
            using Member = std::tuple_element_t<I, std::tuple<Transports...>>;
            if (Member::accepts(endpoint)) return Result(call(std::get<I>(members_)));
            return dispatch<Result, I + 1>(endpoint, ec, std::forward<Call>(call));
        }
    }

    template <class Call>
    static auto or_throw(const char* what, std::string_view endpoint, Call&& call) {
        if (!accepts(endpoint))
            detail::throw_if(errc::unknown_scheme, ("Unknown protocol \"" + std::string(endpoint) + "\"").c_str());
        return detail::or_throw(what, endpoint, std::forward<Call>(call));
    }

    std::tuple<Transports...> members_;
};

/// Every transport of the library, by scheme; a bare address means TCP, as in
/// splinterd. Configure TLS with get<Tls>() = Tls(options).
#if MESH_HAS_TLS
using Multi = BasicMulti<Tcp, Tls, Unix, Inproc>;
#else
using Multi = BasicMulti<Tcp, Unix, Inproc>;
#endif

MESH_NAMESPACE_END
