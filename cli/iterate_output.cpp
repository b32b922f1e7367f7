#include "cli/iterate_output.hpp"

#include <cstdio>

namespace wpckpt::cli {

nlohmann::json iteration_json(const iterate::IterationFigures& f) {
  return {{"type", "iteration"},
          {"iteration", f.iteration},
          {"images_dir", f.dir.string()},
          {"incremental", f.incremental},
          {"scan_mode", f.scan_mode},
          {"scan_mode_reason", f.scan_mode_reason},
          {"pages_scanned", f.pages_scanned},
          {"pages_written", f.pages_written},
          {"bytes_raw", f.bytes_raw},
          {"bytes_compressed", f.bytes_compressed},
          {"scan_seconds", f.scan_seconds},
          {"total_seconds", f.total_seconds},
          {"dirty_pages_per_s", f.dirty_pages_per_s},
          {"events_lost", f.events_lost},
          {"cross_checked", f.cross_checked},
          {"predicted_freeze_ms", f.predicted_freeze_ms}};
}

nlohmann::json result_json(const iterate::IterateReport& r) {
  nlohmann::json final_dump = nullptr;
  if (r.final_dump.ran) {
    final_dump = {{"images_dir", r.final_dump.dir.string()},
                  {"pages_written", r.final_dump.pages_written},
                  {"frozen_ms", r.final_dump.frozen_ms},
                  {"freezing_ms", r.final_dump.freezing_ms},
                  {"left_running", r.final_dump.left_running}};
  }
  return {{"type", "result"},
          {"iterations", r.iterations.size()},
          {"stopped", r.stop_kind},
          {"stop_reason", r.stop_reason},
          {"events_available", r.events_available},
          {"events_reason", r.events_reason},
          {"final_dump", final_dump}};
}

void print_iteration_text(const iterate::IterationFigures& f) {
  std::printf("%3d  %-6s %9llu pages written, %9llu scanned, %7.1f MiB stored, %7.3f s, %9.0f pages/s, dump now ~%.0f ms\n",
              f.iteration, f.scan_mode.c_str(), static_cast<unsigned long long>(f.pages_written),
              static_cast<unsigned long long>(f.pages_scanned), static_cast<double>(f.bytes_compressed) / (1 << 20),
              f.total_seconds, f.dirty_pages_per_s, f.predicted_freeze_ms);
  if (f.scan_mode != "events") std::printf("     full scan: %s\n", f.scan_mode_reason.c_str());
  std::fflush(stdout);
}

void print_iteration(const iterate::IterationFigures& f, bool json) {
  if (!json) return print_iteration_text(f);
  std::printf("%s\n", iteration_json(f).dump().c_str());
  std::fflush(stdout);
}

}  // namespace wpckpt::cli
