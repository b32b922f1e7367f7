#include "cli/dump_output.hpp"

#include <cstdio>

#include "lib/dump/attach_json.hpp"

namespace wpckpt::cli {

nlohmann::json dump_json(const dump::DumpReport& report, const std::string& images_dir, const std::string& parent) {
  nlohmann::json doc = dump::report_json(report);
  doc["images_dir"] = images_dir;
  doc["parent"] = parent.empty() ? nlohmann::json(nullptr) : nlohmann::json(parent);
  doc["pages_stored"] = report.capture.pages_stored;
  doc["pages_zero"] = report.capture.pages_zero;
  doc["bytes_raw"] = report.capture.bytes_raw;
  doc["bytes_compressed"] = report.capture.bytes_compressed;
  doc["incremental"] = report.capture.incremental;
  doc["whole_reason"] = report.capture.whole_reason;
  doc["attach"] = dump::attach_json(report.attach);
  doc["warnings"] = report.warnings;
  if (!report.processes.empty()) doc["processes"] = tree_json(report.processes);
  if (report.snapshot.taken) {
    // Writes are never held: the kernel copies a written page (copy-on-write),
    // or every page was read before the process ran on.
    const dump::SnapshotFigures& s = report.snapshot;
    doc["snapshot"] = {{"mechanism", s.mechanism},
                       {"copy_done_seconds", s.copy_done_seconds},
                       {"pages_read_frozen", s.pages_read_frozen},
                       {"reap_stop_seconds", s.reap_stop_seconds},
                       {"writes_held", 0},
                       {"longest_hold_us", 0}};
  }
  return doc;
}

nlohmann::json tree_json(const std::vector<dump::TreeMemberReport>& processes) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& p : processes)
    out.push_back({{"pid", p.pid},
                   {"ppid", p.ppid},
                   {"comm", p.comm},
                   {"zombie", p.zombie},
                   {"threads", p.threads},
                   {"pages_written", p.pages_written},
                   {"bytes_compressed", p.bytes_compressed},
                   {"incremental", p.incremental}});
  return out;
}

void print_tree_lines(const std::vector<dump::TreeMemberReport>& processes) {
  if (processes.empty()) return;
  std::printf("  tree: %zu processes\n", processes.size());
  for (const auto& p : processes) {
    if (p.zombie) {
      std::printf("    %d (%s, child of %d): zombie, recorded\n", p.pid, p.comm.c_str(), p.ppid);
      continue;
    }
    std::printf("    %d (%s, child of %d): %llu pages written, %.1f MiB compressed%s\n", p.pid, p.comm.c_str(), p.ppid,
                static_cast<unsigned long long>(p.pages_written), static_cast<double>(p.bytes_compressed) / (1 << 20),
                p.incremental ? ", delta" : "");
  }
}

}  // namespace wpckpt::cli
