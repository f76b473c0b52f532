from bench_contract import projection_metadata

metadata, partner_status = projection_metadata()
