// A chain of 50 pre-dumps used by every verb under `ulimit -n 32`: a reader
// keeps only a few image files open, whatever the length of the chain.
#include <gtest/gtest.h>

#include "tests/e2e/predump_helpers.hpp"

namespace wpckpt::test {
namespace {

// wpckpt with these arguments, run by sh after `ulimit -n 32`.
CommandResult run_limited(const std::vector<std::string>& args) {
  std::vector<std::string> argv{"/bin/sh", "-c", "ulimit -n 32 && exec \"$@\"", "sh", wpckpt_binary()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv);
}

TEST(LongChain, EveryVerbWorksOnFiftyImagesWithThirtyTwoDescriptors) {
  Workload w;
  start_workload(w, {"--mib", "2", "--pause-us", "2000"});
  if (::testing::Test::HasFatalFailure()) return;
  TempDir dir;
  const std::string pid = std::to_string(w.pid());
  for (int i = 0; i < 50; ++i) {
    std::vector<std::string> args{"pre-dump", "-t", pid, "-D", (dir / std::to_string(i)).string()};
    if (i > 0) args.insert(args.end(), {"--prev-images-dir", (dir / std::to_string(i - 1)).string()});
    auto r = run_wpckpt(args);
    ASSERT_EQ(r.exit_code, 0) << "pre-dump " << i << ": " << r.err;
  }
  const std::string top = (dir / "49").string();
  auto show = run_limited({"show", "-D", top, "--json"});
  EXPECT_EQ(show.exit_code, 0) << show.err;
  EXPECT_NE(show.out.find("\"chain\""), std::string::npos) << show.out;
  auto verify = run_limited({"verify", "-D", top});
  EXPECT_EQ(verify.exit_code, 0) << verify.err;
  char addr[32];
  std::snprintf(addr, sizeof addr, "0x%llx", static_cast<unsigned long long>(w.buf));
  auto cat = run_limited({"cat", "-D", top, "--addr", addr, "--len", "4096"});
  EXPECT_EQ(cat.exit_code, 0) << cat.err;
  EXPECT_EQ(cat.out.size(), 4096u);
  auto next = run_limited({"pre-dump", "-t", pid, "-D", (dir / "50").string(), "--prev-images-dir", top});
  EXPECT_EQ(next.exit_code, 0) << next.err;
  auto merged = run_limited({"merge", "-D", (dir / "50").string(), "-o", (dir / "merged").string()});
  EXPECT_EQ(merged.exit_code, 0) << merged.err;
  auto dump = run_limited({"dump", "-t", pid, "-D", (dir / "final").string(), "--prev-images-dir",
                           (dir / "50").string(), "--leave-running"});
  EXPECT_EQ(dump.exit_code, 0) << dump.err;
  EXPECT_EQ(run_limited({"verify", "-D", (dir / "final").string()}).exit_code, 0);
}

}  // namespace
}  // namespace wpckpt::test
