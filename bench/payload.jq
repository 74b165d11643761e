# The jq baseline of the collect + build workload: `jq -s -c --argjson nested BOOL -f payload.jq FILES...`
# builds the same payload as bench/floor.py (nested=true: an array per file, as validation results are).
# tsuku's canonical categories, and the subcategory of a failure with no message, by exit code.
def canonical: {"api_error": "network_error", "validation_failed": "install_failed", "timeout": "network_error",
  "deterministic_insufficient": "generation_failed", "deterministic": "generation_failed",
  "network": "network_error"}[.] // .;
def subcategory: {"6": "install_failed", "7": "verify_failed", "9": "deterministic_failed"}[tostring];
def row:
  (if has("status") then {"pass": "passed", "fail": "failed", "skipped": "skipped"}[.status]
   elif .exit_code == 0 then "passed" else "failed" end) as $result
  | {recipe_name: .recipe, ecosystem: "bench", result: $result, platform: .platform}
  + (if (.attempts // 0) > 1 then {attempts: .attempts} else {} end)
  + if $result == "failed" then
      {error_category: ((.category | if . then canonical else null end)
         // (if .blocked_by then "blocked" else "exit_code_\(.exit_code)" end)),
       error_message: ("exit code \(.exit_code)"
         + (if .attempts then " after \(.attempts) attempt(s)" else "" end)
         + (if .blocked_by then " blocked by " + (.blocked_by | join(", ")) else "" end))}
      + ((.exit_code | subcategory) as $sub | if $sub then {error_subcategory: $sub} else {} end)
      + (if .blocked_by then {blocked_by: .blocked_by} else {} end)
    else {} end;
(if $nested then add else . end | map(row)) as $rows
| ([$rows[] | select(.result == "passed")] | length) as $passed
| ([$rows[] | select(.result == "failed")] | length) as $failed
| {batch_id: "bench-jq", ecosystem: "bench", started_at: "2026-02-19T14:31:25Z", completed_at: "2026-02-19T15:02:10Z",
   total_recipes: ($rows | length), passed: $passed, failed: $failed,
   skipped: (($rows | length) - $passed - $failed),
   success_rate: (if $passed + $failed > 0 then ($passed / ($passed + $failed) * 10000 | round / 10000) else 0 end),
   macos_minutes: 0, linux_minutes: 0, results: $rows}
