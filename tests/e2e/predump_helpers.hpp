// Helpers of the pre-dump end-to-end tests: a dirty_writer started through
// `wpckpt run`, pre-dump chains, and the exactness check — every page of every
// area the newest image covers, read back through the chain, must equal
// /proc/PID/mem of the stopped process.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "dump-format/image.hpp"
#include "tests/support/test_support.hpp"

namespace wpckpt::test {

struct Workload {
  TempDir dir;
  ChildProcess child;
  uint64_t buf = 0, size = 0;
  pid_t pid() const { return child.pid(); }
};

// Starts dirty_writer under `wpckpt run` with these extra arguments.
// `prefix` runs before wpckpt (e.g. setpriv to drop privileges).
inline void start_workload(Workload& w, const std::vector<std::string>& args,
                           const std::vector<std::string>& prefix = {}) {
  std::filesystem::path shared = w.dir / "shared";
  std::filesystem::create_directory(shared);
  // An unprivileged workload must reach and write its ready file.
  std::filesystem::permissions(w.dir.path(), std::filesystem::perms::others_exec, std::filesystem::perm_options::add);
  std::filesystem::permissions(shared, std::filesystem::perms::all);
  std::string ready = (shared / "ready").string();
  std::vector<std::string> argv = prefix;
  for (const std::string& a : {wpckpt_binary(), std::string("run"), std::string("--"), workload("dirty_writer"),
                               std::string("--ready"), ready})
    argv.push_back(a);
  argv.insert(argv.end(), args.begin(), args.end());
  w.child = ChildProcess::start(argv);
  ASSERT_TRUE(wait_until([&] { return std::filesystem::exists(ready); })) << "dirty_writer did not start";
  std::istringstream in(read_file(ready));
  std::string word, addr;
  in >> word >> addr >> w.size;
  w.buf = std::stoull(addr, nullptr, 16);
}

// True when every thread of pid is stopped (state T).
inline bool all_threads_stopped(pid_t pid) {
  std::string dir = "/proc/" + std::to_string(pid) + "/task";
  DIR* d = opendir(dir.c_str());
  if (!d) return false;
  bool stopped = true;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::string stat = read_file(dir + "/" + e->d_name + "/stat");
    size_t paren = stat.rfind(')');
    if (paren == std::string::npos || paren + 2 >= stat.size() || stat[paren + 2] != 'T') stopped = false;
  }
  closedir(d);
  return stopped;
}

// Children of any thread of pid (zombies included).
inline bool has_children(pid_t pid) {
  std::string dir = "/proc/" + std::to_string(pid) + "/task";
  DIR* d = opendir(dir.c_str());
  if (!d) return false;
  bool any = false;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::string children = read_file(dir + "/" + e->d_name + "/children");
    if (children.find_first_of("0123456789") != std::string::npos) any = true;
  }
  closedir(d);
  return any;
}

// Stops every thread, at a moment when the process has no child (one that
// forks would otherwise be stopped before it waits for a child, which pre-dump
// then refuses for good).
inline void stop_workload(const Workload& w) {
  for (int attempt = 0; attempt < 1000; ++attempt) {
    ASSERT_EQ(kill(w.pid(), SIGSTOP), 0);
    ASSERT_TRUE(wait_until([&] { return all_threads_stopped(w.pid()); }));
    usleep(2000);  // a child forked just before the stop ends meanwhile (a zombie: still a child)
    if (!has_children(w.pid())) return;
    ASSERT_EQ(kill(w.pid(), SIGCONT), 0);
    usleep(1000);
  }
  FAIL() << "process " << w.pid() << " always had a child when stopped";
}

// One pre-dump; returns its --json document (fails the test on error).
inline nlohmann::json pre_dump(pid_t pid, const std::filesystem::path& dir, const std::filesystem::path& parent = {}) {
  std::vector<std::string> args = {"pre-dump", "-t", std::to_string(pid), "-D", dir.string(), "--json"};
  if (!parent.empty()) {
    args.push_back("--prev-images-dir");
    args.push_back(parent.string());
  }
  CommandResult r = run_wpckpt(args);
  // A workload that forks (--fork) is refused while it has a child, which a
  // busy machine can make last: that refusal is right, try again.
  for (int again = 0; again < 20 && r.exit_code != 0 && r.out.find("has a child process") != std::string::npos;
       ++again)
    r = run_wpckpt(args);
  EXPECT_EQ(r.exit_code, 0) << r.err << r.out << "\ntarget: "
                            << read_file("/proc/" + std::to_string(pid) + "/status").substr(0, 120)
                            << "\nstat: " << read_file("/proc/" + std::to_string(pid) + "/stat");
  if (r.exit_code != 0) return {};
  return nlohmann::json::parse(r.out);
}

struct Mismatch {
  uint64_t pages_compared = 0, pages_differing = 0, first_bad = 0;
  std::string first_area;
};

// Compares every covered area with contents against /proc/PID/mem, page by
// page. Pages the process itself cannot read (a file mapping past its end)
// are skipped.
// The image of `pid` in `dir`: dir itself, or its member's when the process
// had children then (a tree's image, lib/state/tree_state.hpp).
inline std::filesystem::path image_of(const std::filesystem::path& dir, pid_t pid) {
  return std::filesystem::exists(dir / "tree.json") ? dir / std::to_string(pid) : dir;
}

inline Mismatch compare_with_process(pid_t pid, const std::filesystem::path& image_dir) {
  Mismatch m;
  auto chain = image::ImageChain::open(image_of(image_dir, pid));
  EXPECT_TRUE(chain.ok()) << chain.error().message();
  if (!chain.ok()) return m;
  int mem = open(("/proc/" + std::to_string(pid) + "/mem").c_str(), O_RDONLY | O_CLOEXEC);
  EXPECT_GE(mem, 0);
  std::vector<std::byte> want(image::kPageSize), got(image::kPageSize);
  for (const image::MemoryArea& a : (*chain)->manifest(0).areas) {
    if (!a.contents) continue;
    for (uint64_t addr = a.start; addr < a.end; addr += image::kPageSize) {
      if (pread(mem, want.data(), want.size(), static_cast<off_t>(addr)) != static_cast<ssize_t>(want.size())) continue;
      auto r = (*chain)->read(addr, got);
      EXPECT_TRUE(r.ok()) << r.error().message();
      ++m.pages_compared;
      if (std::memcmp(want.data(), got.data(), want.size()) != 0) {
        if (m.pages_differing++ == 0) {
          m.first_bad = addr;
          m.first_area = a.prot + " " + a.backing + " " + a.path + " " + a.attributes.dump();
        }
      }
    }
  }
  close(mem);
  return m;
}

}  // namespace wpckpt::test
