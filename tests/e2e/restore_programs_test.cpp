// Real programs from Debian, started under `wpckpt run`, pre-dumped and
// dumped mid-work (the dump kills them), restored eagerly and with --lazy
// (memory arriving while they run): their output must be byte-identical to
// an uninterrupted run.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "lib/checkpoint/memory_capture.hpp"
#include "tests/e2e/restore_helpers.hpp"

namespace wpckpt::test {
namespace {

// Text with some structure (compressors have work to do, slowly enough).
void write_text(const std::string& path, size_t bytes) {
  std::ofstream out(path, std::ios::binary);
  uint64_t x = 88172645463325252ull;
  std::string line;
  static const char* words[] = {"alpha", "beta", "gamma", "delta", "restore", "page", "zstd", "kernel", "uffd"};
  for (size_t n = 0; n < bytes;) {
    line.clear();
    for (int w = 0; w < 12; ++w) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      line += words[x % 9];
      line += std::to_string(x % 1000);
      line += ' ';
    }
    line += '\n';
    out << line;
    n += line.size();
  }
}

void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

// Runs argv once uninterrupted and once checkpointed (pre_dumps pre-dumps, a
// dump, a restore, lazy or not); compares the two outputs. The dump's
// standard output goes to `dump_out` if given.
void same_output_after_restore(const std::vector<std::string>& argv, const std::string& stdin_path, int pre_dumps,
                               bool lazy, const std::vector<std::string>& dump_flags = {},
                               std::string* dump_out = nullptr, uint64_t dump_after_anon_bytes = 0) {
  TempDir dir;
  std::string expected = dir / "expected", got = dir / "got";
  auto started = std::chrono::steady_clock::now();
  {
    ChildProcess plain = ChildProcess::start(argv, {}, expected, "", stdin_path);
    ASSERT_EQ(exit_code_of(plain.wait(std::chrono::seconds(120))), 0);
  }
  // The checkpoints must fall inside the program's run whatever the speed of
  // the machine: space them by a fraction of how long the plain run took.
  auto plain_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
  int interval_ms = std::max(10, static_cast<int>(plain_ms.count() / (3 * (pre_dumps + 2))));
  std::vector<std::string> full = {wpckpt_binary(), "run", "--"};
  full.insert(full.end(), argv.begin(), argv.end());
  ChildProcess proc = ChildProcess::start(full, {}, got, "", stdin_path);
  pid_t pid = proc.pid();
  std::filesystem::path parent;
  for (int i = 0; i <= pre_dumps; ++i) {
    sleep_ms(interval_ms);  // let it work between iterations
    bool last = i == pre_dumps;
    // A dump whose default depends on the process's size waits until the
    // program holds that much: under load, its allocation came after the
    // dump (no pre-copy, as that size warrants, 2 runs in 5 here).
    if (last && dump_after_anon_bytes > 0) {
      ASSERT_TRUE(wait_until([&] { return checkpoint::anon_memory_bytes(pid) >= dump_after_anon_bytes; },
                             std::chrono::seconds(60)))
          << "the program never held " << dump_after_anon_bytes << " bytes of anonymous memory";
    }
    std::filesystem::path img = dir / (last ? "dump" : "pre" + std::to_string(i));
    std::vector<std::string> args = {last ? "dump" : "pre-dump", "-t", std::to_string(pid), "-D", img.string()};
    if (!parent.empty()) args.insert(args.end(), {"--prev-images-dir", parent.string()});
    if (last) args.insert(args.end(), dump_flags.begin(), dump_flags.end());
    CommandResult r = run_wpckpt(args);
    ASSERT_EQ(r.exit_code, 0) << r.err << "\n(the program may have finished too early)";
    if (last && dump_out) *dump_out = r.out;
    parent = img;
  }
  proc.wait();
  ASSERT_TRUE(pid_gone(pid));
  KillByPid guard{pid};
  // Nothing hidden left beside the images (a pre-copy's or a writer's).
  for (const auto& e : std::filesystem::directory_iterator(dir.path()))
    EXPECT_NE(e.path().filename().string()[0], '.') << e.path();
  // A one-shot dump, pre-copied or not, is one standalone image: no parent.
  if (pre_dumps == 0) {
    EXPECT_TRUE(nlohmann::json::parse(read_file(parent / "manifest.json"))["parent"].is_null());
  }
  std::vector<std::string> restore_argv = {wpckpt_binary(), "restore", "-D", parent.string()};
  if (lazy) restore_argv.push_back("--lazy");
  ChildProcess restore = ChildProcess::start(restore_argv);
  ASSERT_EQ(exit_code_of(restore.wait(std::chrono::seconds(180))), 0);
  std::string a = read_file(expected), b = read_file(got);
  EXPECT_EQ(a.size(), b.size());
  EXPECT_TRUE(a == b) << "output differs from the uninterrupted run";
}

// The parameter: restore with --lazy.
class RestorePrograms : public ::testing::TestWithParam<bool> {};

TEST_P(RestorePrograms, GzipWritingALargeFile) {
  TempDir dir;
  write_text(dir / "input", 12 << 20);
  same_output_after_restore({"/usr/bin/gzip", "-9", "-n", "-c"}, dir / "input", 2, GetParam());
}

TEST_P(RestorePrograms, MultiThreadedXz) {
  TempDir dir;
  write_text(dir / "input", 6 << 20);
  same_output_after_restore({"/usr/bin/xz", "-T2", "-6", "--block-size=1MiB", "-c"}, dir / "input", 1, GetParam());
}

TEST_P(RestorePrograms, Sha256sumOfALargeFile) {
  TempDir dir;
  std::filesystem::path input = dir / "sparse";
  { std::ofstream(input) << "start"; }
  std::filesystem::resize_file(input, 1ull << 30);  // sparse: read at page-cache speed, hashed at CPU speed
  same_output_after_restore({"/usr/bin/sha256sum", input.string()}, "", 1, GetParam());
}

TEST_P(RestorePrograms, Python3Computation) {
  same_output_after_restore(kPythonComputation,
                            "", 2, GetParam());
}

// dump --pre-copy: one image, standalone, no hidden images left beside it.
TEST(RestoreProgramsPreCopy, Python3ComputationFromAOneShotDump) {
  same_output_after_restore(kPythonComputation,
                            "", 0, false, {"--pre-copy"});
}

// A plain one-shot dump of a process with 64 MiB or more of anonymous
// memory copies it first by default (dump::pre_copy_by_default) and freezes
// it only for what it writes meanwhile; --no-pre-copy freezes it throughout.
// The 80 MiB are filled at once (in C), long before the dump comes.
const std::vector<std::string> kPythonWith80MiB = {
    "/usr/bin/python3", "-c",
    "import hashlib\n"
    "buf = bytearray(b'\\x01') * (80 << 20); h = hashlib.sha256(); x = 12345\n"
    "for r in range(4_000_000):\n"
    "    x = (x * 6364136223846793005 + 1442695040888963407) % (1 << 64)\n"
    "    j = x % len(buf); buf[j] = (buf[j] + r) % 256\n"
    "    if r % 100_000 == 0: h.update(buf[j:j + 4096])\n"
    "h.update(hashlib.sha256(buf).digest()); print(h.hexdigest())\n"};

TEST(RestoreProgramsPreCopy, ALargeProcessIsCopiedFirstByDefault) {
  std::string out;
  same_output_after_restore(kPythonWith80MiB, "", 0, false, {"--json"}, &out, 80u << 20);
  nlohmann::json doc = nlohmann::json::parse(out);
  ASSERT_TRUE(doc.contains("pre_copy")) << out;
  EXPECT_TRUE(doc["pre_copy"]["automatic"].get<bool>());
  EXPECT_TRUE(doc["pre_copy"]["merged"].get<bool>());
  EXPECT_GE(doc["pre_copy"]["pages_written"].get<uint64_t>(), (80u << 20) / 4096);
  // The whole memory is more than a freeze should write: a second round copies what was written meanwhile.
  EXPECT_GE(doc["pre_copy"]["rounds"].get<uint64_t>(), 2u);
}

TEST(RestoreProgramsPreCopy, NoPreCopyFreezesALargeProcessThroughout) {
  std::string out;
  same_output_after_restore(kPythonWith80MiB, "", 0, false, {"--no-pre-copy", "--json"}, &out, 80u << 20);
  nlohmann::json doc = nlohmann::json::parse(out);
  EXPECT_FALSE(doc.contains("pre_copy")) << out;
  EXPECT_GE(doc["pages_written"].get<uint64_t>(), (80u << 20) / 4096);
}

INSTANTIATE_TEST_SUITE_P(Restore, RestorePrograms, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& p) { return p.param ? "Lazy" : "Eager"; });

}  // namespace
}  // namespace wpckpt::test
