// Reading a small file whole (a /proc file, a config file) with read(2):
// an error is a Result, never an exception. std::istreambuf_iterator over an
// ifstream throws from inside the library when read(2) fails, which a
// /proc/PID file does when PID exits while it is read (ESRCH).
#pragma once

#include <string>

#include "lib/base/result.hpp"

namespace wpckpt {

Result<std::string> read_text_file(const std::string& path);

}  // namespace wpckpt
