// core/device_policy (what a vendor's settings allow now) and the engine's
// upload gate it drives: each refusal, each limit, and that lifting it serves again.
#include <doctest/doctest.h>

#include "core/device_policy.hpp"
#include "core/engine.hpp"
#include "engine_support.hpp"

using namespace ps;
using namespace ps::core;

namespace {

DeviceState on_battery(int percent) {
    DeviceState s;
    s.battery = percent;
    s.on_ac = false;
    return s;
}

using testing::filled_key;

}  // namespace

TEST_CASE("device policy: no upload on battery below the minimum, on AC or above it uploads") {
    DevicePolicy p;
    p.min_battery = 30;
    CHECK(evaluate_policy(p, on_battery(29), 0, 0).refusal == UploadRefusal::Battery);
    CHECK(evaluate_policy(p, on_battery(30), 0, 0).may_upload());
    DeviceState charging = on_battery(5);
    charging.on_ac = true;
    CHECK(evaluate_policy(p, charging, 0, 0).may_upload());
    CHECK(evaluate_policy(p, DeviceState{}, 0, 0).may_upload());  // no battery reported
    p.min_battery = 0;
    CHECK(evaluate_policy(p, on_battery(1), 0, 0).may_upload());  // the check is off
}

TEST_CASE("device policy: no upload on a metered link unless the vendor allows it") {
    DevicePolicy p;
    DeviceState s;
    s.metered = true;
    CHECK(evaluate_policy(p, s, 0, 0).refusal == UploadRefusal::Metered);
    p.upload_on_metered = true;
    CHECK(evaluate_policy(p, s, 0, 0).may_upload());
    s.metered = false;
    p.upload_on_metered = false;
    CHECK(evaluate_policy(p, s, 0, 0).may_upload());
}

TEST_CASE("device policy: the monthly upload cap stops uploads once reached") {
    DevicePolicy p;
    p.monthly_upload_cap = 1000;
    DeviceState s;
    s.month_uploaded = 999;
    CHECK(evaluate_policy(p, s, 0, 0).may_upload());
    s.month_uploaded = 1000;
    CHECK(evaluate_policy(p, s, 0, 0).refusal == UploadRefusal::MonthlyCap);
    p.monthly_upload_cap = 0;
    CHECK(evaluate_policy(p, s, 0, 0).may_upload());
    CHECK(std::string(to_string(UploadRefusal::MonthlyCap)) == "monthly_cap");
}

TEST_CASE("device policy: business hours lower the rates within the hours and days only") {
    DevicePolicy p;
    p.hours_from = 8;
    p.hours_to = 18;
    p.hours_upload_rate = 100'000;
    p.hours_download_rate = 200'000;
    DeviceState s;
    s.local = {2, 9};  // Tuesday 09:00
    auto v = evaluate_policy(p, s, 0, 0);
    CHECK(v.business_hours);
    CHECK(v.upload_rate == 100'000);
    CHECK(v.download_rate == 200'000);
    // A configured limit lower than the policy's stays.
    v = evaluate_policy(p, s, 50'000, 0);
    CHECK(v.upload_rate == 50'000);
    CHECK(v.download_rate == 200'000);
    // Outside: 18:00, Sunday, Saturday.
    for (LocalTime t : {LocalTime{2, 18}, LocalTime{0, 9}, LocalTime{6, 12}, LocalTime{1, 7}}) {
        s.local = t;
        auto out = evaluate_policy(p, s, 0, 300'000);
        CHECK_FALSE(out.business_hours);
        CHECK(out.upload_rate == 0);
        CHECK(out.download_rate == 300'000);
    }
    // A window over midnight.
    p.hours_from = 22;
    p.hours_to = 6;
    p.days = 0x7f;
    CHECK(in_business_hours(p, {3, 23}));
    CHECK(in_business_hours(p, {3, 5}));
    CHECK_FALSE(in_business_hours(p, {3, 6}));
    p.hours_to = 22;
    CHECK_FALSE(in_business_hours(p, {3, 23}));  // from == to: none
}

TEST_CASE("device policy: below the free-disk minimum no new download starts, except an urgent one") {
    DevicePolicy p;
    CHECK_FALSE(refuse_caching(p, 10, false));  // off
    p.min_free_disk = 1'000'000;
    auto why = refuse_caching(p, 999'999, false);
    REQUIRE(why);
    CHECK(*why == "the store's file system has 999999 bytes free, under the policy's minimum of 1000000 "
                  "(policy.min_free_disk)");
    CHECK_FALSE(refuse_caching(p, 1'000'000, false));
    CHECK_FALSE(refuse_caching(p, 999'999, true));
}

TEST_CASE("device policy: a refusing engine answers every request busy, drops what was queued, and serves again after") {
    constexpr PatchShape shape{4, 1u << 20, 4u << 20};
    PatchId id{};
    id.fill(7);
    Engine holder(testing::config(filled_key(1), Role::Peer, "d1"), 5);
    holder.add_patch(id, shape, Bitfield(shape.segments, true), false, Instant{0});
    REQUIRE(holder.conn_up(ConnId{1}, PeerIdentity{filled_key(2), Role::Peer, "d1"}, true, Instant{0}));
    REQUIRE(holder.conn_up(ConnId{2}, PeerIdentity{filled_key(3), Role::Peer, "d1"}, true, Instant{0}));
    holder.actions().clear();
    // Peer 2's requests queue behind a full upload buffer...
    holder.writable(ConnId{1}, 1ull << 30, Instant{0});
    holder.writable(ConnId{2}, 1ull << 30, Instant{0});
    holder.on_request(ConnId{2}, id, Segment{1}, Instant{1});
    holder.on_request(ConnId{2}, id, Segment{2}, Instant{1});
    CHECK(testing::take<act::Serve>(holder).empty());
    holder.actions().clear();
    // ...and are answered busy when the policy refuses uploads.
    holder.set_uploads_refused(true);
    auto dropped = testing::take<act::SendReject>(holder);
    CHECK(dropped.size() == 2);
    for (auto& r : dropped) CHECK(r.reason == RejectReason::Busy);
    holder.actions().clear();
    holder.writable(ConnId{1}, 0, Instant{2});  // both connections drained: only the policy holds it back
    holder.writable(ConnId{2}, 0, Instant{2});
    holder.on_request(ConnId{1}, id, Segment{0}, Instant{2});
    auto rej = testing::take<act::SendReject>(holder);
    REQUIRE(rej.size() == 1);
    CHECK(rej[0].reason == RejectReason::Busy);
    CHECK(testing::take<act::Serve>(holder).empty());
    CHECK(holder.refused_by_policy() == 3);
    holder.actions().clear();
    // Lifted: served again.
    holder.set_uploads_refused(false);
    holder.on_request(ConnId{1}, id, Segment{0}, Instant{3});
    CHECK(testing::take<act::Serve>(holder).size() == 1);
    CHECK(testing::take<act::SendReject>(holder).empty());
}

TEST_CASE("device policy: business hours and days parse, and bad text is refused naming it") {
    DevicePolicy p;
    REQUIRE(parse_business_hours("8-18", p));
    CHECK(p.hours_from == 8);
    CHECK(p.hours_to == 18);
    REQUIRE(parse_business_hours("22-6", p));
    CHECK(p.hours_from == 22);
    CHECK(p.hours_to == 6);
    REQUIRE(parse_business_hours("0-24", p));
    CHECK(in_business_hours(p, {3, 0}));
    CHECK(in_business_hours(p, {3, 23}));
    CHECK(parse_business_hours("8", p).error() == "'8' is not local hours FROM-TO such as 8-18 (0..24)");
    CHECK_FALSE(parse_business_hours("25-3", p));
    REQUIRE(parse_business_days("mon-fri", p));
    CHECK(p.days == 0b0111110);
    REQUIRE(parse_business_days("sat,sun", p));
    CHECK(p.days == 0b1000001);
    REQUIRE(parse_business_days("fri-mon", p));
    CHECK(p.days == 0b1100011);
    REQUIRE(parse_business_days("all", p));
    CHECK(p.days == 0x7f);
    CHECK(parse_business_days("monday", p).error() == "'monday' is not days such as mon-fri, sat,sun or all");
    CHECK_FALSE(parse_business_days("mon,", p));
    CHECK_FALSE(parse_business_days("", p));
}

TEST_CASE("device policy: the monthly counter starts again each calendar month and survives its file") {
    UploadMonth m;
    m = count_upload(m, 2026, 11, 500);
    m = count_upload(m, 2026, 11, 250);
    CHECK(m == UploadMonth{2026, 11, 750});
    m = count_upload(m, 2026, 12, 10);
    CHECK(m == UploadMonth{2026, 12, 10});
    auto text = format_upload_month(m);
    CHECK(text == "patchswarm-upload-month-v1\n2026-12 10\n");
    auto back = parse_upload_month(text);
    REQUIRE(back);
    CHECK(*back == m);
    CHECK(parse_upload_month("patchswarm-upload-month-v1\n2026-13 1\n").error() ==
          "upload-month file: '2026-13 1' is not YYYY-MM BYTES");
    CHECK(parse_upload_month("x\n").error() == "upload-month file: the first line is not patchswarm-upload-month-v1");
    CHECK(parse_upload_month("patchswarm-upload-month-v1\n2026-01 99999999999999999999\n").error() ==
          "upload-month file: the byte count is over 2^64");
    CHECK(parse_upload_month(std::string(200, 'a')).error() == "upload-month file: 200 bytes, over the limit of 128");
}
