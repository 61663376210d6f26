// The k6 side of bench/run_bench.py: the same journey as bench/locustfile_bench.py -
// GET /api/health with no think time, two checks (status 200, JSON body status "ok").
// Run by the bench as: k6 run --no-usage-report --vus 10 --duration 10s bench/k6_script.js
import http from "k6/http";
import { check } from "k6";

const BASE = __ENV.TARGET || "http://127.0.0.1:8080";

export default function () {
  const res = http.get(`${BASE}/api/health`, { tags: { name: "/api/health" } });
  check(res, {
    "status is 200": (r) => r.status === 200,
    "body is ok": (r) => r.status === 200 && r.json("status") === "ok",
  });
}

// Totals for the bench, read from JSON rather than parsed from the text summary.
export function handleSummary(data) {
  const out = {};
  out[__ENV.SUMMARY || "k6-summary.json"] = JSON.stringify(data);
  return out;
}
