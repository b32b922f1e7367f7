// The probes run for real against this kernel. The reference machine (Linux
// 6.18, CONFIG_MEM_SOFT_DIRTY=n, root with CAP_CHECKPOINT_RESTORE) has async
// write-protect and PAGEMAP_SCAN and lacks soft-dirty; what must hold on any
// kernel >= 6.9 is asserted, what varies (soft-dirty) is checked against the
// kernel's configuration (docs/KERNEL.md §10); the switched-off tests
// run in a child process so that the cache of this one stays untouched.
#include "lib/probe/features.hpp"

#include <gtest/gtest.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <set>
#include <string>

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
                          "userfaultfd_user_mode_only"}) {
    auto s = feature(key);
    ASSERT_TRUE(s.has_value()) << key;
    EXPECT_TRUE(s->present) << key << ": " << s->detail;
  }
}

// Newer than our 6.9 minimum: the guard category of PAGEMAP_SCAN (6.14),
// discarded pages reported WRITTEN (seen on 6.18, docs/KERNEL.md §10) and
// PR_TIMER_CREATE_RESTORE_IDS (6.13, docs/KERNEL.md §15). Present
// on the reference kernel (6.18); on an older one, the test says what it lacks.
TEST(Features, RecentKernelsHaveGuardCategoryAndDiscardedWritten) {
  utsname u{};
  ASSERT_EQ(uname(&u), 0);
  int major = 0, minor = 0;
  bool recent = std::sscanf(u.release, "%d.%d", &major, &minor) == 2 && (major > 6 || (major == 6 && minor >= 18));
  std::string missing;
  for (const char* key : {"pagemap_scan_category_guard", "discarded_pages_written", "timer_create_restore_ids"}) {
    auto s = feature(key);
    ASSERT_TRUE(s.has_value()) << key;
    if (recent) EXPECT_TRUE(s->present) << key << ": " << s->detail;
    else if (!s->present) missing += std::string(key) + " (" + s->detail + ") ";
  }
  if (!missing.empty()) GTEST_SKIP() << "kernel " << u.release << " is older than 6.18 and lacks: " << missing;
}

// The kernel's build configuration, from /proc/config.gz or /boot; empty if
// neither is readable.
std::string kernel_config() {
  utsname u{};
  if (uname(&u) != 0) return {};
  for (std::string cmd : {std::string("gzip -dc /proc/config.gz 2>/dev/null"),
                          "cat /boot/config-" + std::string(u.release) + " 2>/dev/null"}) {
    std::string text;
    if (FILE* p = popen(cmd.c_str(), "r")) {
      char buf[65536];
      size_t n;
      while ((n = fread(buf, 1, sizeof buf, p)) > 0) text.append(buf, n);
      pclose(p);
    }
    if (text.find("CONFIG_") != std::string::npos) return text;
  }
  return {};
}

// The reference machine lacks soft-dirty (CONFIG_MEM_SOFT_DIRTY=n), many
// distribution kernels have it: the probe must agree with the kernel's own
// configuration, whichever it is.
TEST(Features, SoftDirtyProbeAgreesWithTheKernelConfig) {
  auto s = feature("soft_dirty");
  ASSERT_TRUE(s.has_value());
  std::string config = kernel_config();
  if (config.empty()) GTEST_SKIP() << "kernel configuration not readable (/proc/config.gz, /boot/config-*): cannot tell "
                                      "whether soft-dirty should be present; the probe says "
                                   << (s->present ? "present" : "missing") << " (" << s->detail << ")";
  bool built_in = config.find("\nCONFIG_MEM_SOFT_DIRTY=y") != std::string::npos;
  EXPECT_EQ(s->present, built_in) << "CONFIG_MEM_SOFT_DIRTY=" << (built_in ? "y" : "n") << ", probe: " << s->detail;
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
