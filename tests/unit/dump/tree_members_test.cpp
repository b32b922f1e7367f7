// Which processes a tree dump covers (lib/dump/tree_members.hpp), read from
// /proc for real children of the test: a child with a grandchild, and a
// zombie with its exit status.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>

#include "lib/dump/tree_members.hpp"
#include "lib/dump/unsupported_state.hpp"

namespace wpckpt::dump {
namespace {

// Children of the test process, killed and reaped whatever happens.
struct Family {
  pid_t child = -1, grandchild = -1, zombie = -1;
  int pipe_fds[2] = {-1, -1};
  Family() {
    if (::pipe(pipe_fds) != 0) return;
    child = ::fork();
    if (child == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      pid_t g = ::fork();
      if (g == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        for (;;) ::pause();
      }
      (void)!::write(pipe_fds[1], &g, sizeof g);
      for (;;) ::pause();
    }
    (void)!::read(pipe_fds[0], &grandchild, sizeof grandchild);
    zombie = ::fork();
    if (zombie == 0) ::_exit(7);
    siginfo_t si{};
    ::waitid(P_PID, static_cast<id_t>(zombie), &si, WEXITED | WNOWAIT);
  }
  ~Family() {
    if (child > 0) ::kill(child, SIGKILL), ::waitpid(child, nullptr, 0);
    if (zombie > 0) ::waitpid(zombie, nullptr, 0);
    ::close(pipe_fds[0]), ::close(pipe_fds[1]);
  }
};

TEST(TreeMembers, ReadsChildrenGrandchildrenAndZombiesParentsFirst) {
  auto before = children_of(::getpid());
  ASSERT_TRUE(before.ok() && before->empty()) << "the test process has children already";
  Family f;
  ASSERT_GT(f.grandchild, 0);
  auto tree = read_tree(::getpid());
  ASSERT_TRUE(tree.ok()) << tree.error().message();
  ASSERT_EQ(tree->processes.size(), 4u);
  EXPECT_EQ(tree->processes.front().pid, ::getpid());
  auto at = [&](pid_t pid) {
    return std::find_if(tree->processes.begin(), tree->processes.end(), [&](auto& m) { return m.pid == pid; });
  };
  ASSERT_NE(at(f.child), tree->processes.end());
  ASSERT_NE(at(f.grandchild), tree->processes.end());
  EXPECT_LT(at(f.child), at(f.grandchild));
  EXPECT_EQ(at(f.grandchild)->ppid, f.child);
  ASSERT_NE(at(f.zombie), tree->processes.end());
  EXPECT_TRUE(at(f.zombie)->zombie);
  EXPECT_EQ(at(f.zombie)->wait_status, 7 << 8);
  EXPECT_TRUE(state::validate_tree(*tree).ok());

  EXPECT_TRUE(member_gone(f.zombie));
  EXPECT_FALSE(member_gone(f.grandchild));
  auto again = read_tree(::getpid());
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(same_tree(*tree, *again));

  drop_subtree(*tree, f.child);
  EXPECT_EQ(tree->processes.size(), 2u);
  EXPECT_EQ(at(f.grandchild), tree->processes.end());
  EXPECT_FALSE(same_tree(*tree, *again));
}

}  // namespace
}  // namespace wpckpt::dump
