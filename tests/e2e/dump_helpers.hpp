// Helpers of the dump end-to-end tests: running pre-dump/dump on a
// dump_selfcheck workload, reading process.json back from an image, and the
// checks that a process was left as it was (running, untraced).
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "dump-format/image.hpp"
#include "lib/state/process_state.hpp"
#include "tests/support/selfcheck_workload.hpp"

namespace wpckpt::test {

inline nlohmann::json json_of(const CommandResult& r) {
  auto doc = nlohmann::json::parse(r.out, nullptr, false);
  return doc.is_discarded() ? nlohmann::json::object() : doc;
}

inline state::ProcessState load_state(const std::filesystem::path& dir) {
  auto chain = image::ImageChain::open(dir);
  if (!chain) ADD_FAILURE() << chain.error().message();
  if (!chain) return {};
  auto bytes = (*chain)->read_file(state::kProcessStateFile);
  if (!bytes) ADD_FAILURE() << bytes.error().message();
  if (!bytes) return {};
  auto st = state::parse(*bytes);
  if (!st) ADD_FAILURE() << st.error().message();
  return st ? *st : state::ProcessState{};
}

inline std::string task_status(pid_t pid, pid_t tid) {
  return read_file("/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/status");
}

// No thread stopped by us or traced by anyone.
inline bool untraced_and_running(const SelfcheckWorkload& w) {
  for (pid_t tid : w.threads()) {
    std::string s = task_status(w.pid(), tid);
    if (s.find("TracerPid:\t0\n") == std::string::npos) return false;
    if (s.find("State:\tt") != std::string::npos || s.find("State:\tT") != std::string::npos) return false;
  }
  return true;
}

}  // namespace wpckpt::test
