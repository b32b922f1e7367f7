#include "lib/base/result.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>

#include "lib/base/feature.hpp"
#include "lib/base/unique_fd.hpp"

namespace wpckpt {
namespace {

Result<int> open_missing() {
  UniqueFd fd(::open("/nonexistent/wpckpt", O_RDONLY));
  if (!fd) return errno_error("open", "/nonexistent/wpckpt");
  return fd.get();
}

Result<int> forwards() {
  WPCKPT_TRY_ASSIGN(int v, open_missing());
  return v + 1;
}

Result<void> forwards_void() {
  WPCKPT_TRY(open_missing());
  return ok();
}

TEST(Result, CarriesErrnoOperationAndContext) {
  Result<int> r = open_missing();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().err, ENOENT);
  EXPECT_EQ(r.error().message(), "open /nonexistent/wpckpt: No such file or directory");
}

TEST(Result, TryMacrosPropagate) {
  EXPECT_EQ(forwards().error().err, ENOENT);
  EXPECT_EQ(forwards_void().error().op, "open");
  Result<int> good = 41;
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(*good, 41);
}

TEST(Result, HintIsKept) {
  Error e = make_error(EPERM, "ptrace", "pid 1").with_hint("run as root");
  EXPECT_EQ(e.hint, "run as root");
  EXPECT_EQ(e.message(), "ptrace pid 1: Operation not permitted");
}

TEST(UniqueFd, ClosesOnDestruction) {
  int raw;
  {
    UniqueFd fd(::open("/dev/null", O_RDONLY));
    raw = fd.get();
    ASSERT_GE(raw, 0);
  }
  EXPECT_EQ(fcntl(raw, F_GETFD), -1);
  EXPECT_EQ(errno, EBADF);
}

TEST(Feature, DisabledListIsParsed) {
  setenv(kDisableFeaturesEnv, "a_b,pagemap_scan", 1);
  EXPECT_TRUE(feature_disabled("pagemap_scan"));
  EXPECT_TRUE(feature_disabled("a_b"));
  EXPECT_FALSE(feature_disabled("pagemap"));
  setenv(kDisableFeaturesEnv, "all", 1);
  EXPECT_TRUE(feature_disabled("anything"));
  unsetenv(kDisableFeaturesEnv);
  EXPECT_FALSE(feature_disabled("pagemap_scan"));
}

}  // namespace
}  // namespace wpckpt
