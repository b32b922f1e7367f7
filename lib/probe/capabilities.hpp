// Whether this process holds a capability in its effective set (capget(2)),
// the one check every part of wpckpt uses.
#pragma once

namespace wpckpt::probe {

// `cap` is a CAP_* number (lib/base/uapi/process.hpp has those the headers lack).
bool has_effective_capability(int cap);

}  // namespace wpckpt::probe
