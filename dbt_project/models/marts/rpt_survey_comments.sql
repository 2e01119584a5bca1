-- The voice of the customer for the digest: answers with a comment from the
-- latest week [as_of - 7 days, as_of). No customer contact data.
with

surveys as (
    select * from {{ ref('stg_survey_tool__surveys') }}
),

latest_week_comments as (
    select *
    from surveys
    where comment is not null
        and submitted_at >= {{ shift_in_business_tz(as_of(), "interval '-7 days'") }}
        and submitted_at < {{ as_of() }}
),

final as (
    select
        response_id::text as response_id,
        submitted_at::timestamptz as submitted_at,
        score::integer as score,
        score_group::text as score_group,
        comment::text as comment,
        channel::text as channel,
        manager_id::text as manager_id
    from latest_week_comments
)

select * from final
