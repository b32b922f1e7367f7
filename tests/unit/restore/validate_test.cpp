// restore's checks of an image against this machine: the XSAVE state.
#include "lib/restore/validate.hpp"

#include <gtest/gtest.h>

#include "lib/ptrace/regs.hpp"

namespace wpckpt::restore {
namespace {

// An image with this CPU's features and one thread whose XSAVE area is `size` bytes.
state::ProcessState with_xsave(uint32_t recorded_size, size_t thread_size) {
  state::ProcessState s;
  auto vdso = own_vdso_image();
  if (vdso) s.vdso_image = *vdso;
  s.xsave_size = recorded_size;
  state::ThreadState t;
  t.tid = 1;
  t.is_main = true;
  t.xsave.assign(thread_size, 0);
  s.threads.push_back(t);
  return s;
}

TEST(CheckCpu, AcceptsThisCpusXsaveSize) {
  const uint32_t mine = ptrace::xsave_size();
  auto r = check_cpu_and_vdso(with_xsave(mine, mine));
  EXPECT_TRUE(r.ok()) << r.error().message();
}

TEST(CheckCpu, RefusesAThreadWhoseXsaveIsNotTheRecordedSize) {
  const uint32_t mine = ptrace::xsave_size();
  auto r = check_cpu_and_vdso(with_xsave(mine, mine - 64));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("threads[0].xsave"), std::string::npos) << r.error().message();
}

TEST(CheckCpu, RefusesAnXsaveAreaLargerThanThisCpus) {
  const uint32_t larger = ptrace::xsave_size() + 4096;
  auto r = check_cpu_and_vdso(with_xsave(larger, larger));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("XSAVE area is " + std::to_string(larger) + " bytes"), std::string::npos)
      << r.error().message();
}

}  // namespace
}  // namespace wpckpt::restore
