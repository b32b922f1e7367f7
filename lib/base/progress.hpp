// How long-running library work reports progress to the CLI without knowing
// about terminals: a callback with a phase name and done/total units.
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>

namespace wpckpt {

using ProgressFn = std::function<void(std::string_view phase, uint64_t done, uint64_t total)>;

}  // namespace wpckpt
