"""Wall time, GPU-hours, rental cost, energy and CO2 of a training run."""

SECONDS_PER_HOUR = 3600.0


def gpu_hours(gpus, wall_s):
    return gpus * wall_s / SECONDS_PER_HOUR


def rental_cost_usd(gpu_hours_, gpu_hour_usd):
    # Cottier et al. 2024: cost = price per chip-hour × chip-hours (Cottier et al. 2024, arXiv 2405.21015)
    return gpu_hours_ * gpu_hour_usd


def energy_mwh(gpus, tdp_W, server_power_factor, power_utilization, pue, wall_s):
    # Cottier et al. 2024 (Epoch): GPUs × chip TDP × server/chip power (1.82) × average draw (0.75)
    # × PUE × hours
    watts = gpus * tdp_W * server_power_factor * power_utilization * pue
    return watts * wall_s / SECONDS_PER_HOUR / 1e6


def co2_tonnes(energy_mwh_, co2_kg_per_kwh):
    # 1 MWh = 1000 kWh and 1 t = 1000 kg, so t = MWh × kg/kWh
    return energy_mwh_ * co2_kg_per_kwh
