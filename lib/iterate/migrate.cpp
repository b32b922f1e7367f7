#include "lib/iterate/migrate.hpp"

#include <fmt/core.h>

#include <chrono>
#include <ctime>
#include <future>

namespace wpckpt::iterate {

Result<MigrateReport> migrate(const MigrateRequest& m, const std::function<void(const IterationFigures&)>& on_iteration) {
  IterateRequest req;
  req.pid = m.pid;
  req.max_iterations = m.max_iterations;
  req.target_downtime_ms = m.target_downtime_ms;
  req.final_step = FinalStep::Dump;
  req.interval_s = m.interval_s;
  req.use_events = m.use_events;
  req.compress_level = m.compress_level;
  req.cancel = m.cancel;
  req.page_server = net::PageServerTarget{m.to, m.secret_file};
  // Names of their own on the destination: another migration's images are never in the way.
  req.name_prefix = fmt::format("migrate-{}-{}-", m.pid, static_cast<long long>(std::time(nullptr)));
  // The killed process's memory is torn down while the destination restores.
  req.reap_final_later = true;
  MigrateReport report;
  WPCKPT_TRY_ASSIGN(report.iterations, iterate(req, on_iteration));
  if (!report.iterations.final_dump.ran)
    return make_error(ECANCELED, "migrate", report.iterations.stop_reason + "; the process runs on here")
        .with_hint("the images sent so far stay on the destination; run migrate again");
  report.final_image = report.iterations.final_dump.dir.filename().string();
  // The request goes out at once, on a thread of its own (network only); this
  // thread, the tracer, reaps the killed process meanwhile. On one host the
  // restore there waits for that (its pid), elsewhere nothing waits for it.
  auto asked = std::async(std::launch::async,
                          [&] { return net::request_restore(m.to, m.secret_file, report.final_image); });
  if (report.iterations.final_dump.dying) report.iterations.final_dump.dying->kill();
  auto restored = asked.get();
  if (!restored) {
    Error e = std::move(restored).error();
    e.context += "; the process was dumped to " + m.to.text() + " as " + report.final_image;
    return std::move(e).with_hint("restore it there: wpckpt restore -D <page-server dir>/" + report.final_image);
  }
  report.restored = *restored;
  using Ms = std::chrono::duration<double, std::milli>;
  const auto now = std::chrono::steady_clock::now();
  const FinalFigures& last = report.iterations.final_dump;
  report.downtime_ms = Ms(now - last.freeze_began).count();
  report.dump_ms = Ms(last.returned - last.freeze_began).count();
  report.restore_request_ms = Ms(now - last.returned).count();
  return report;
}

}  // namespace wpckpt::iterate
