// The probes run for real against this kernel. The reference machine (Linux
// 6.18, CONFIG_MEM_SOFT_DIRTY=n, root with CAP_CHECKPOINT_RESTORE) has async
// write-protect and PAGEMAP_SCAN and lacks soft-dirty; the switched-off tests
// run in a child process so that the cache of this one stays untouched.
#include "lib/probe/features.hpp"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <set>

namespace wpckpt::probe {
namespace {

TEST(Features, KeysAreUniqueSnakeCase) {
  std::set<std::string> seen;
  for (const std::string& k : feature_keys()) {
    EXPECT_TRUE(seen.insert(k).second) << k;
    for (char c : k) EXPECT_TRUE((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_') << k;
  }
  EXPECT_GE(seen.size(), 25u);
}

TEST(Features, ThisKernelHasAsyncWriteProtectAndScan) {
  for (const char* key : {"uffd_wp_async", "uffd_wp_unpopulated", "pagemap_scan", "pagemap_scan_wp_matching",
                          "discarded_pages_written", "pidfd_open", "pidfd_getfd", "process_vm_readv", "ptrace_seize",
                          "clone3_set_tid", "pr_set_mm_map", "uffd_missing", "userfaultfd_syscall",
                          "userfaultfd_user_mode_only", "pagemap_scan_category_guard"}) {
    auto s = feature(key);
    ASSERT_TRUE(s.has_value()) << key;
    EXPECT_TRUE(s->present) << key << ": " << s->detail;
  }
}

TEST(Features, ThisKernelLacksSoftDirty) {
  auto s = feature("soft_dirty");
  ASSERT_TRUE(s.has_value());
  EXPECT_FALSE(s->present) << s->detail;
}

TEST(Features, UnknownKey) { EXPECT_FALSE(feature("no_such_feature").has_value()); }

// Every probe, switched off, reports missing without running.
TEST(Features, EachProbeCanBeSwitchedOff) {
  for (const std::string& key : feature_keys()) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      setenv(kDisableFeaturesEnv, key.c_str(), 1);
      auto s = feature(key);
      _exit(s && !s->present && s->disabled ? 0 : 1);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << key;
  }
}

TEST(Features, ProbesLeaveNoDescriptorsOpen) {
  auto count_fds = [] {
    int n = 0;
    for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) (void)e, ++n;
    return n;
  };
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    int before = count_fds();
    all_features();
    _exit(count_fds() == before ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

}  // namespace
}  // namespace wpckpt::probe
