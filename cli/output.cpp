#include "cli/output.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <iostream>

#include "lib/base/log.hpp"

namespace wpckpt::cli {

nlohmann::json error_json(const Error& error) {
  nlohmann::json e{{"message", error.message()}, {"operation", error.op}, {"context", error.context}};
  if (error.err != 0) {
    const char* name = strerrorname_np(error.err);
    e["errno"] = error.err;
    e["errno_name"] = name ? name : "";
  }
  if (!error.hint.empty()) e["hint"] = error.hint;
  return e;
}

int report_error(const Error& error, bool json) {
  // With --log-file the log ends with the error too (it is also printed below).
  if (log::output_fd() != STDERR_FILENO) {
    log::write(log::Level::Error, error.message());
    if (!error.hint.empty()) log::write(log::Level::Error, "hint: " + error.hint);
  }
  if (json) {
    print_json({{"ok", false}, {"error", error_json(error)}});
  } else {
    std::cerr << "wpckpt: error: " << error.message() << "\n";
    if (!error.hint.empty()) std::cerr << "wpckpt: hint: " << error.hint << "\n";
  }
  return kExitFailure;
}

int report_usage(const std::string& message, bool json) {
  if (json) {
    print_json({{"ok", false}, {"error", {{"message", message}, {"operation", "usage"}}}});
  } else {
    std::cerr << "wpckpt: error: " << message << "\n";
  }
  return kExitUsage;
}

void print_json(const nlohmann::json& doc) {
  std::cout << doc.dump(2) << std::endl;
}

}  // namespace wpckpt::cli
