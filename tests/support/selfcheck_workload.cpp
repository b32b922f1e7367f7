#include "tests/support/selfcheck_workload.hpp"

#include <dirent.h>
#include <signal.h>

#include <cstdlib>
#include <sstream>
#include <stdexcept>

namespace wpckpt::test {

SelfcheckWorkload::SelfcheckWorkload(const std::vector<std::string>& args, bool under_agent) {
  out_path_ = (dir_ / "out.txt").string();
  std::vector<std::string> argv;
  if (under_agent) argv = {wpckpt_binary(), "run", "--"};
  argv.push_back(workload("dump_selfcheck"));
  argv.insert(argv.end(), args.begin(), args.end());
  proc_ = ChildProcess::start(argv, {}, out_path_);
  if (!wait_until([&] { return output().find("READY") != std::string::npos || !proc_.running(); }))
    throw std::runtime_error("dump_selfcheck did not start");
}

std::string SelfcheckWorkload::output() const { return read_file(out_path_); }

bool SelfcheckWorkload::failed() const {
  if (output().find("FAIL") != std::string::npos) return true;
  std::string stat = read_file("/proc/" + std::to_string(pid()) + "/stat");
  size_t paren = stat.rfind(')');
  return paren == std::string::npos || paren + 2 >= stat.size() || stat[paren + 2] == 'Z' || stat[paren + 2] == 'X';
}

uint64_t SelfcheckWorkload::ticks() const {
  std::istringstream in(output());
  std::string line;
  uint64_t n = 0;
  while (std::getline(in, line))
    if (line.rfind("TICK ", 0) == 0) ++n;
  return n;
}

uint64_t SelfcheckWorkload::work() const {
  std::istringstream in(output());
  std::string line, last;
  while (std::getline(in, line))
    if (line.rfind("TICK ", 0) == 0 && line.find('\n') == std::string::npos) last = line;
  unsigned long tick = 0, sum = 0;
  if (std::sscanf(last.c_str(), "TICK %lu %lu", &tick, &sum) != 2) return 0;
  return sum;
}

bool SelfcheckWorkload::keeps_computing(uint64_t more) const {
  uint64_t t0 = ticks(), w0 = work();
  bool ok = wait_until([&] { return failed() || (ticks() >= t0 + more && work() > w0); });
  return ok && !failed();
}

uint64_t SelfcheckWorkload::ready_value(const std::string& key) const {
  std::string out = output();
  size_t at = out.find(" " + key + "=");
  if (at == std::string::npos) return 0;
  return std::strtoull(out.c_str() + at + key.size() + 2, nullptr, 16);
}

std::vector<pid_t> SelfcheckWorkload::threads() const {
  std::vector<pid_t> tids;
  std::string path = "/proc/" + std::to_string(pid()) + "/task";
  if (DIR* d = opendir(path.c_str())) {
    while (dirent* e = readdir(d))
      if (e->d_name[0] >= '0' && e->d_name[0] <= '9') tids.push_back(std::atoi(e->d_name));
    closedir(d);
  }
  return tids;
}

}  // namespace wpckpt::test
