// What restore does with the established TCP connections of an image
// (CRIU's options): --tcp-established restores them with TCP repair,
// --tcp-close gives the program closed sockets in their place (its next
// read or write fails as on a connection the peer dropped); with neither,
// the restore refuses before anything is created and names them. Either way
// the restore removes the dump's network lock once the process runs
// (lib/netlock/network_lock.hpp).
#pragma once

#include "lib/base/result.hpp"
#include "lib/state/process_state.hpp"

namespace wpckpt::restore {

enum class TcpPolicy { Refuse, Established, Close };

// The number of established connections the image has.
Result<size_t> apply_tcp_policy(state::ProcessState& st, TcpPolicy policy);

}  // namespace wpckpt::restore
