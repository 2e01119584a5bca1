-- What each outreach campaign (ISO week) and script variant achieved, against the
-- campaign's holdout. Keyed to as_of: only campaigns handed over before as_of, calls
-- and orders before as_of. See _outreach__docs.md for the definitions.
with

assignments as (
    select * from {{ ref('stg_ops__outreach_assignments') }}
),

pushes as (
    select * from {{ ref('stg_ops__outreach_pushes') }}
),

outcomes as (
    select * from {{ ref('stg_call_center__call_outcomes') }}
),

orders as (
    select * from {{ ref('stg_shop__orders') }}
),

campaign_customers as (
    select *
    from assignments
    where (is_treatment or is_holdout)
        and campaign_started_at < {{ as_of() }}
),

pushed_customers as (
    select campaign, customer_id
    from pushes
    where is_pushed
    group by 1, 2
),

call_results as (
    select
        campaign,
        customer_id,
        min(called_at) as first_called_at,
        bool_or(is_reached) as is_reached,
        bool_or(has_agreed_to_return) as has_agreed_to_return
    from outcomes
    where called_at < {{ as_of() }}
    group by 1, 2
),

-- attribution starts at the first call, or at the hand-over for the uncalled and the holdout
exposed as (
    select
        campaign_customers.campaign,
        campaign_customers.customer_id,
        campaign_customers.variant,
        campaign_customers.is_holdout,
        campaign_customers.campaign_started_at,
        pushed_customers.customer_id is not null as is_pushed,
        coalesce(call_results.is_reached, false) as is_reached,
        coalesce(call_results.has_agreed_to_return, false) as has_agreed_to_return,
        case
            when campaign_customers.is_holdout then campaign_customers.campaign_started_at
            else coalesce(call_results.first_called_at, campaign_customers.campaign_started_at)
        end as attribution_starts_at
    from campaign_customers
    left join pushed_customers
        on campaign_customers.campaign = pushed_customers.campaign
        and campaign_customers.customer_id = pushed_customers.customer_id
    left join call_results
        on campaign_customers.campaign = call_results.campaign
        and campaign_customers.customer_id = call_results.customer_id
),

campaign_windows as (
    select
        campaign,
        min(campaign_started_at) as window_starts_at
    from campaign_customers
    group by 1
),

-- the completed orders before as_of that any campaign can credit or compare against:
-- from the earliest attribution start or campaign window on. Read from raw once and
-- kept (a few weeks of orders, none before the first campaign) for the two joins below,
-- instead of every order in history being copied aside for them.
campaign_orders as (
    select
        customer_id,
        order_id,
        ordered_at,
        amount
    from orders
    where is_completed
        and ordered_at < {{ as_of() }}
        and ordered_at >= least(
            (select min(attribution_starts_at) from exposed),
            (select min(window_starts_at) from campaign_windows)
        )
),

attributed as (
    select
        exposed.*,
        count(campaign_orders.order_id) as attributed_orders,
        coalesce(sum(campaign_orders.amount), 0) as attributed_revenue
    from exposed
    left join campaign_orders
        on campaign_orders.customer_id = exposed.customer_id
        and campaign_orders.ordered_at >= exposed.attribution_starts_at
        and campaign_orders.ordered_at < exposed.attribution_starts_at
            + make_interval(days => {{ var('attribution_window_days') }})
    group by
        exposed.campaign,
        exposed.customer_id,
        exposed.variant,
        exposed.is_holdout,
        exposed.campaign_started_at,
        exposed.is_pushed,
        exposed.is_reached,
        exposed.has_agreed_to_return,
        exposed.attribution_starts_at
),

treatment as (
    select
        campaign,
        variant,
        count(*) as pushed,
        count(*) filter (where is_reached) as reached,
        count(*) filter (where has_agreed_to_return) as agreed_to_return,
        count(*) filter (where attributed_orders > 0) as converted,
        sum(attributed_revenue) filter (where attributed_orders > 0) as converted_revenue,
        sum(attributed_orders) filter (where attributed_orders > 0) as converted_orders
    from attributed
    where not is_holdout and is_pushed
    group by 1, 2
),

holdout as (
    select
        campaign,
        count(*) as holdout_customers,
        count(*) filter (where attributed_orders > 0) as holdout_converted
    from attributed
    where is_holdout
    group by 1
),

-- the rest: every completed order in the campaign's window by someone it did not push
other_orders as (
    select
        campaign_windows.campaign,
        avg(campaign_orders.amount) as avg_check_other
    from campaign_windows
    inner join campaign_orders
        on campaign_orders.ordered_at >= campaign_windows.window_starts_at
        and campaign_orders.ordered_at < campaign_windows.window_starts_at
            + make_interval(days => {{ var('attribution_window_days') }})
    where not exists (
        select 1
        from pushed_customers
        where pushed_customers.campaign = campaign_windows.campaign
            and pushed_customers.customer_id = campaign_orders.customer_id
    )
    group by 1
),

rates as (
    select
        treatment.campaign,
        treatment.variant,
        treatment.pushed,
        treatment.reached,
        treatment.agreed_to_return,
        treatment.converted,
        treatment.converted::numeric / nullif(treatment.pushed, 0) as conversion_rate,
        coalesce(holdout.holdout_customers, 0) as holdout_customers,
        coalesce(holdout.holdout_converted, 0) as holdout_converted,
        holdout.holdout_converted::numeric / nullif(holdout.holdout_customers, 0) as holdout_conversion_rate,
        treatment.converted_revenue / nullif(treatment.converted_orders, 0) as avg_check_converted,
        other_orders.avg_check_other
    from treatment
    left join holdout on treatment.campaign = holdout.campaign
    left join other_orders on treatment.campaign = other_orders.campaign
),

-- uplift = difference of two proportions; 95% interval by the normal (Wald) approximation
uplift as (
    select
        *,
        conversion_rate - holdout_conversion_rate as uplift,
        1.959963984540054 * sqrt(
            conversion_rate * (1 - conversion_rate) / nullif(pushed, 0)
            + holdout_conversion_rate * (1 - holdout_conversion_rate) / nullif(holdout_customers, 0)
        ) as uplift_margin
    from rates
),

final as (
    select
        campaign::text as campaign,
        variant::text as variant,
        pushed::bigint as pushed,
        reached::bigint as reached,
        agreed_to_return::bigint as agreed_to_return,
        converted::bigint as converted,
        conversion_rate::numeric(8, 4) as conversion_rate,
        holdout_customers::bigint as holdout_customers,
        holdout_converted::bigint as holdout_converted,
        holdout_conversion_rate::numeric(8, 4) as holdout_conversion_rate,
        uplift::numeric(8, 4) as uplift,
        (uplift - uplift_margin)::numeric(8, 4) as uplift_ci_low,
        (uplift + uplift_margin)::numeric(8, 4) as uplift_ci_high,
        avg_check_converted::numeric(14, 2) as avg_check_converted,
        avg_check_other::numeric(14, 2) as avg_check_other,
        (pushed * {{ var('cost_per_call') }} / nullif(converted, 0))::numeric(14, 2) as retention_cost
    from uplift
)

select * from final
