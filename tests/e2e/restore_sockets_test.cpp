// Sockets end to end (zdtm_sockets checks itself after the restore): TCP and
// UDP over IPv4/IPv6, unix pairs with queued data, unix listeners, and an
// established TCP connection with --tcp-established; what a dump refuses
// (and that the process then runs on), and restore's TCP policy.
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "tests/e2e/restore_helpers.hpp"

namespace wpckpt::test {
namespace {

void restore_and_check(const Checkpointed& c, const std::vector<std::string>& flags = {}) {
  KillByPid guard{c.pid};
  ChildProcess restore = start_restore(c.last, c.pid, flags);
  ASSERT_EQ(::kill(c.pid, SIGUSR1), 0);
  int status = restore.wait(std::chrono::seconds(60));
  EXPECT_EQ(exit_code_of(status), 0) << read_file(c.out);
  EXPECT_NE(read_file(c.out).find("PASS"), std::string::npos) << read_file(c.out);
  EXPECT_EQ(read_file(c.out).find("FAIL"), std::string::npos) << read_file(c.out);
}

TEST(RestoreSockets, ListenersUdpAndUnixPairsWithQueuedData) {
  Checkpointed c;
  checkpoint(c, {workload("zdtm_sockets"), c.dir.path().string()}, "READY", 1);
  restore_and_check(c);
}

TEST(RestoreSockets, EstablishedTcpWithTcpRepair) {
  Checkpointed c;
  c.dump_flags = {"--tcp-established"};
  checkpoint(c, {workload("zdtm_sockets"), c.dir.path().string(), "tcp"}, "READY", 1);
  restore_and_check(c, {"--tcp-established"});
}

// `wpckpt iterate` passes --tcp-established to its final dump (it once had
// no such option, and the dump's refusal told the user to pass it).
TEST(RestoreSockets, IterateTakesEstablishedTcpToItsFinalDump) {
  Checkpointed c;
  c.out = (c.dir / "out.txt").string();
  ChildProcess proc = ChildProcess::start(
      {wpckpt_binary(), "run", "--", workload("zdtm_sockets"), c.dir.path().string(), "tcp"}, {}, c.out);
  c.pid = proc.pid();
  ASSERT_TRUE(wait_until([&] { return read_file(c.out).find("READY") != std::string::npos; })) << read_file(c.out);
  const std::filesystem::path dir = c.dir / "it";
  CommandResult r = run_wpckpt({"iterate", "-t", std::to_string(c.pid), "-D", dir.string(), "--max-iterations", "2",
                                "--tcp-established", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  proc.wait();  // killed by the final dump
  ASSERT_TRUE(pid_gone(c.pid));
  int last = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) last = std::max(last, std::stoi(e.path().filename()));
  c.last = dir / std::to_string(last);
  ASSERT_TRUE(std::filesystem::exists(c.last / "manifest.json"));
  restore_and_check(c, {"--tcp-established"});
}

TEST(RestoreSockets, EstablishedTcpNeedsTheFlagAndTheProcessRunsOn) {
  TempDir dir;
  std::string out = (dir / "out.txt").string();
  ChildProcess proc = ChildProcess::start({wpckpt_binary(), "run", "--", workload("zdtm_sockets"),
                                           dir.path().string(), "tcp"}, {}, out);
  ASSERT_TRUE(wait_until([&] { return read_file(out).find("READY") != std::string::npos; }));
  CommandResult r = run_wpckpt({"dump", "-t", std::to_string(proc.pid()), "-D", (dir / "img").string()});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("established TCP connection 127.0.0.1:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--tcp-established"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "img" / "manifest.json"));
  // A snapshot cannot take it at all (the process runs on): it says what can.
  r = run_wpckpt({"snapshot", "-t", std::to_string(proc.pid()), "-D", (dir / "snap").string()});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("established TCP connection 127.0.0.1:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("dump -R --tcp-established"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "snap" / "manifest.json"));
  // Nothing was harmed: the process runs on and its connection still works.
  ASSERT_EQ(::kill(proc.pid(), SIGUSR1), 0);
  EXPECT_EQ(exit_code_of(proc.wait(std::chrono::seconds(30))), 0) << read_file(out);
  EXPECT_NE(read_file(out).find("PASS"), std::string::npos) << read_file(out);
}

TEST(RestoreSockets, RestoreRefusesEstablishedTcpWithoutAPolicy) {
  Checkpointed c;
  c.dump_flags = {"--tcp-established"};
  checkpoint(c, {workload("zdtm_sockets"), c.dir.path().string(), "tcp"}, "READY", 0);
  CommandResult r = run_wpckpt({"restore", "-D", c.last.string()});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--tcp-close"), std::string::npos) << r.err;
  EXPECT_TRUE(pid_gone(c.pid));
  // The refused restore keeps the dump's network lock for a later one; this
  // test removes it by hand, as wpckpt-restore(1) says.
  const std::string table = "inet wpckpt_lock_" + std::to_string(c.pid);
  EXPECT_EQ(std::system(("nft list table " + table + " >/dev/null").c_str()), 0) << "the dump left no network lock";
  EXPECT_EQ(std::system(("nft delete table " + table).c_str()), 0);
}

// A unix datagram socket connected to a name outside the process (a log
// socket, say): refused without --ext-unix-sk, reconnected to that name by
// the restore with it. Every step takes the option, as CRIU scripts pass it.
TEST(RestoreSockets, ADatagramSocketConnectedOutsideIsReconnectedByName) {
  TempDir dir;
  const std::string path = (dir / "log.sock").string(), go = (dir / "go").string();
  int receiver = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(receiver, 0);
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  std::strcpy(un.sun_path, path.c_str());
  ASSERT_EQ(::bind(receiver, reinterpret_cast<sockaddr*>(&un), sizeof un), 0);
  timeval wait_at_most{30, 0};
  ASSERT_EQ(::setsockopt(receiver, SOL_SOCKET, SO_RCVTIMEO, &wait_at_most, sizeof wait_at_most), 0);
  auto received = [&] {
    char buf[64] = {};
    ssize_t n = ::recv(receiver, buf, sizeof buf - 1, 0);
    return std::string(buf, n > 0 ? static_cast<size_t>(n) : 0);
  };
  const std::string out = (dir / "out.txt").string();
  ChildProcess proc = ChildProcess::start(
      {wpckpt_binary(), "run", "--", "python3", "-c",
       "import os,socket,sys,time\n"
       "s=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)\ns.connect(sys.argv[1])\ns.send(b'before')\n"
       "print('READY',flush=True)\n"
       "while not os.path.exists(sys.argv[2]): time.sleep(0.02)\n"
       "s.send(b'after restore')",
       path, go},
      {}, out);
  KillByPid guard{proc.pid()};
  ASSERT_TRUE(wait_until([&] { return read_file(out).find("READY") != std::string::npos; })) << read_file(out);
  EXPECT_EQ(received(), "before");
  const std::string pid = std::to_string(proc.pid());
  CommandResult r = run_wpckpt({"dump", "-t", pid, "-D", (dir / "refused").string()});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("unix dgram socket connected to"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--ext-unix-sk"), std::string::npos) << r.err;
  EXPECT_FALSE(pid_gone(proc.pid()));

  r = run_wpckpt({"pre-dump", "-t", pid, "-D", (dir / "pre").string(), "--ext-unix-sk"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_wpckpt({"dump", "-t", pid, "-D", (dir / "dump").string(), "--prev-images-dir", "../pre", "--ext-unix-sk"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  proc.wait();  // killed by the dump; reaped so that its pid is free
  ChildProcess restore = start_restore(dir / "dump", proc.pid(), {"--ext-unix-sk"});
  std::ofstream{go}.flush();
  EXPECT_EQ(received(), "after restore");
  EXPECT_EQ(exit_code_of(restore.wait(std::chrono::seconds(30))), 0) << read_file(out);
  ::close(receiver);
}

TEST(RestoreSockets, AConnectionToAnotherProcessIsRefusedByName) {
  TempDir dir;
  std::string path = (dir / "peer.sock").string();
  // Our own listener; the workload (a shell's nc-less stand-in: python3) connects to it.
  int listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  std::strcpy(un.sun_path, path.c_str());
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&un), sizeof un), 0);
  ASSERT_EQ(::listen(listener, 1), 0);
  std::string out = (dir / "out.txt").string();
  ChildProcess proc = ChildProcess::start(
      {wpckpt_binary(), "run", "--", "python3", "-c",
       "import socket,sys,time\ns=socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\nprint('READY',flush=True)\ntime.sleep(60)",
       path},
      {}, out);
  ASSERT_TRUE(wait_until([&] { return read_file(out).find("READY") != std::string::npos; })) << read_file(out);
  CommandResult r = run_wpckpt({"dump", "-t", std::to_string(proc.pid()), "-D", (dir / "img").string()});
  ::close(listener);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("unix stream socket connected to"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("outside the process"), std::string::npos) << r.err;
  EXPECT_FALSE(pid_gone(proc.pid()));
}

}  // namespace
}  // namespace wpckpt::test
