//! `pcibind list`: every PCI device, as a table or JSON.

use std::io;

use pcibind::{Context, Error};

use crate::output::{device_json_fields, ids_and_class, print_json_array, print_table};

pub(crate) fn list(ctx: &Context, overrides: bool, json: bool) -> Result<(), Error> {
    let mut infos = Vec::new();
    for address in ctx.devices()? {
        let info = ctx.device_info(&address.to_string())?;
        if !overrides || info.driver_override.is_some() {
            infos.push(info);
        }
    }
    let mut out = io::stdout().lock();
    if json {
        let items: Vec<String> = infos
            .iter()
            .map(|i| format!("  {{{}}}", device_json_fields(i)))
            .collect();
        print_json_array(&mut out, &items);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = infos
        .iter()
        .map(|i| {
            let (ids, class) = ids_and_class(i);
            vec![
                i.address.to_string(),
                ids,
                class,
                i.driver.as_ref().map_or("-".into(), |d| d.to_string()),
                i.driver_override.clone().unwrap_or_else(|| "-".into()),
                i.iommu_group.map_or("-".into(), |g| g.to_string()),
                if i.vfio_bound { "yes" } else { "no" }.into(),
                i.vfio_module.as_ref().map_or("-".into(), |m| m.to_string()),
            ]
        })
        .collect();
    let header = [
        "ADDRESS",
        "ID",
        "CLASS",
        "DRIVER",
        "OVERRIDE",
        "GROUP",
        "VFIO",
        "VFIO DRIVER",
    ];
    print_table(&mut out, &header, &rows);
    Ok(())
}
