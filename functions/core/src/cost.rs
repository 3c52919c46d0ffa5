//! What calls cost, as far as the Worker reads or passes it: a batch's spend cap (`costCap`, USD) parsed at
//! the edge, and Twilio's price of a call read off its Call resource. The estimate, the running spend and
//! the cap rule are SQL (`sql/schema/25_cost.sql`): the claim that keeps the caps is there, and so are the
//! phones of the rows a batch copies.

use crate::batch::ItemError;
use serde_json::Value;

/// The largest `costCap` taken, in USD: far above any real campaign, small enough to stay exact as a
/// JSON number.
pub const MAX_COST_CAP_USD: f64 = 1e9;
/// The smallest: a hundredth of a cent (a cap must be above 0).
pub const MIN_COST_CAP_USD: f64 = 1e-4;

/// `costCap` of a batch request: absent or null is no cap; otherwise a number of USD, 0.0001 to 10^9.
pub fn parse_cost_cap(value: Option<&Value>) -> Result<Option<f64>, ItemError> {
    let Some(value) = value.filter(|v| !v.is_null()) else { return Ok(None) };
    match value.as_f64() {
        Some(usd) if (MIN_COST_CAP_USD..=MAX_COST_CAP_USD).contains(&usd) => Ok(Some(usd)),
        _ => Err(ItemError::new(
            "costCap",
            "invalid_cost_cap",
            // Written out, not formatted: f64's Display would link float printing into the Worker (with
            // str::parse below, some 15 KB gzipped).
            "costCap must be a number of USD from 0.0001 to 1000000000",
        )
        .with_value(value)),
    }
}

/// What Twilio charged for a call, from the Call resource's `price` (a decimal string, negative for a
/// charge: `"-0.01300"`): `Ok(None)` while Twilio has no price yet (null right after the call ends),
/// else the amount charged, 0 or more.
pub fn charged_amount(price: Option<&str>) -> Result<Option<f64>, String> {
    let Some(raw) = price.map(str::trim).filter(|p| !p.is_empty()) else { return Ok(None) };
    // serde_json's number parser, already in the Worker (str::parse would link core's float parsing).
    let parsed: f64 = serde_json::from_str(raw).map_err(|_| format!("twilio price {raw:?} is not a decimal"))?;
    if !parsed.is_finite() || parsed > 0.0 {
        return Err(format!("twilio price {raw:?} is not a charge (Twilio writes charges negative)"));
    }
    Ok(Some(-parsed + 0.0)) // + 0.0: "-0.00000" is a charge of 0, not -0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_cost_cap_is_a_positive_number_of_usd() {
        assert_eq!(parse_cost_cap(None), Ok(None));
        assert_eq!(parse_cost_cap(Some(&Value::Null)), Ok(None));
        assert_eq!(parse_cost_cap(Some(&json!(25))), Ok(Some(25.0)));
        assert_eq!(parse_cost_cap(Some(&json!(0.5))), Ok(Some(0.5)));
        assert_eq!(parse_cost_cap(Some(&json!(0.0001))), Ok(Some(0.0001)));
        for bad in [json!(0), json!(0.00009), json!(-1), json!("10"), json!(2e9), json!(true)] {
            let error = parse_cost_cap(Some(&bad)).unwrap_err();
            assert_eq!((error.path.as_str(), error.code, error.value), ("costCap", "invalid_cost_cap", Some(bad)));
        }
    }

    #[test]
    fn twilio_prices_are_charges_written_negative() {
        assert_eq!(charged_amount(Some("-0.01300")), Ok(Some(0.013)));
        assert_eq!(charged_amount(Some("-0.02800")), Ok(Some(0.028)));
        assert_eq!(charged_amount(Some("-0.00000")).map(|a| a.map(f64::to_bits)), Ok(Some(0.0f64.to_bits())));
        assert_eq!(charged_amount(None), Ok(None));
        assert_eq!(charged_amount(Some("")), Ok(None));
        assert!(charged_amount(Some("0.013")).is_err(), "a positive price is no charge");
        assert!(charged_amount(Some("free")).is_err());
        assert!(charged_amount(Some("-inf")).is_err());
        assert!(charged_amount(Some("\"-0.1\"")).is_err(), "a JSON string inside is no decimal");
        assert!(charged_amount(Some("-1e400")).is_err(), "out of range");
    }

    #[test]
    fn a_charge_serializes_as_the_decimal_twilio_wrote() {
        // The amount reaches SQL's numeric as a JSON number: its shortest form must be Twilio's digits.
        let amount = charged_amount(Some("-0.01400")).unwrap().unwrap();
        assert_eq!(serde_json::to_string(&amount).unwrap(), "0.014");
    }
}
