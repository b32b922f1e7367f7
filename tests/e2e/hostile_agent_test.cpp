// A process that is not a wpckpt agent but holds a memfd named like the
// agent's state page (issue #10, item 5): pre-dump and dump must refuse it
// with a clear error and exit code 1, never die of a signal (a page the
// owner can truncate raises SIGBUS in whoever maps it), leave nothing in the
// images directory, and leave the process running and untraced.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "tests/support/test_support.hpp"

namespace wpckpt::test {
namespace {

struct FakePage {
  const char* mode;      // fake_agent's argument
  const char* refusal;   // what the error must say
};

class HostileAgent : public ::testing::TestWithParam<FakePage> {};

TEST_P(HostileAgent, PreDumpAndDumpRefuseItCleanly) {
  TempDir dir;
  std::string out = (dir / "fake.out").string();
  ChildProcess fake = ChildProcess::start({workload("fake_agent"), GetParam().mode}, {}, out);
  ASSERT_TRUE(wait_until([&] { return read_file(out).find("ready") != std::string::npos; })) << read_file(out);
  std::filesystem::path images = dir / "images";
  std::filesystem::create_directory(images);
  std::string pid = std::to_string(fake.pid());
  for (const char* verb : {"pre-dump", "dump"}) {
    SCOPED_TRACE(verb);
    CommandResult r = run_wpckpt({verb, "-t", pid, "-D", (images / verb).string()});
    EXPECT_EQ(r.exit_code, 1) << "killed by a signal if -1; stderr: " << r.err;
    EXPECT_NE(r.err.find("wpckpt: error:"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(GetParam().refusal), std::string::npos) << r.err;
    EXPECT_TRUE(std::filesystem::is_empty(images)) << "something was left in " << images;
    ASSERT_TRUE(fake.running());
    std::string status = read_file("/proc/" + pid + "/status");
    EXPECT_NE(status.find("TracerPid:\t0\n"), std::string::npos) << status;
    for (const char* stopped : {"State:\tt", "State:\tT", "State:\tZ"})
      EXPECT_EQ(status.find(stopped), std::string::npos) << status;
  }
}

INSTANTIATE_TEST_SUITE_P(Pages, HostileAgent,
                         ::testing::Values(FakePage{"empty", "not sealed against resizing"},
                                           FakePage{"unsealed", "not sealed against resizing"},
                                           FakePage{"small", "it is 100 bytes, not 4096"},
                                           FakePage{"big", "it is 8192 bytes, not 4096"},
                                           FakePage{"garbage", "or something that is not one"}),
                         [](const ::testing::TestParamInfo<FakePage>& info) { return std::string(info.param.mode); });

}  // namespace
}  // namespace wpckpt::test
