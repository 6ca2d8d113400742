"""Cost and energy family: GPU-hours, rental cost, energy, its price and CO2 of the expected training run."""

from __future__ import annotations

import numpy as np

from simulator.registry import Columns, Derived, Family, FieldGroup, FigureSpec, Input, Section
from simulator.training.energy import co2_tonnes, energy_mwh, gpu_hours, rental_cost_usd

INPUTS = (
    Input("finance.gpu_hour_usd", "float", "Price per GPU-hour", "Rent per GPU-hour; empty = the catalog's dated "
          "on-demand price for the accelerator.", "USD/GPU-hour", 0.0, 10_000.0, link="usd", column="gpu_hour_usd",
          step=0.1, provenance="datasheet",
          # assumed ±20%: dated H100 prices run from $2.49 to $6.88 an hour across providers (2026-09 to 2026-11)
          spread=0.20,
          derived=Derived("the catalog's dated price for the accelerator", lambda c: c["hw_gpu_hour_usd"],
                          ("cluster.accelerator",))),
    Input("finance.server_power_factor", "float", "Server power ÷ GPU TDP", "Whole-server draw per GPU over the "
          "chip's TDP (Cottier et al. 2024: 1.82).", "ratio", 1.0, 10.0, default=1.82, link="spf",
          column="server_power_factor", step=0.01, provenance="published"),
    Input("finance.power_utilization", "float", "Average draw ÷ peak", "Mean power over the server's peak during "
          "training (Cottier et al. 2024: 0.75).", "fraction", 0.0, 1.0, default=0.75, link="util",
          column="power_utilization", step=0.05, provenance="published"),
    Input("finance.pue", "float", "PUE (facility ÷ IT power)", "Power usage effectiveness: 1.10 hyperscaler, 1.25 "
          "otherwise (Cottier et al. 2024).", "ratio", 1.0, 5.0, default=1.25, link="pue", column="pue", step=0.01,
          provenance="published"),
    Input("finance.co2_kg_per_kwh", "float", "Grid carbon", "Carbon intensity of the electricity (assumed 0.37; "
          "adjust to your grid).", "kg CO2/kWh", 0.0, 5.0, default=0.37, link="co2", column="co2_kg_per_kwh",
          step=0.01),
    Input("finance.electricity_usd_per_kwh", "float", "Electricity price", "Price of the electricity the run draws "
          "(Cottier et al. 2024: US industrial, $0.083). A rented GPU-hour already includes it; it is the running "
          "cost of owned hardware.", "USD/kWh", 0.0, 10.0, default=0.0826, link="elec",
          column="electricity_usd_per_kwh", step=0.005, provenance="published"),
)

FIGURES = (
    FigureSpec("training.gpu_hours", "GPU-hours", "GPU·h", "GPUs × expected wall-clock hours", "lower", ranged=True),
    FigureSpec("training.cost_usd", "Compute cost", "USD", "GPU-hours × price per GPU-hour (Cottier et al. 2024)",
               "lower", ranged=True),
    FigureSpec("training.energy_mwh", "Energy", "MWh",
               "Cottier et al. 2024: GPUs × TDP × server factor × utilisation × PUE × hours", "lower", ranged=True),
    FigureSpec("training.electricity_usd", "Electricity cost", "USD",
               "energy × electricity price (included in a rented GPU-hour; the running cost of owned hardware)",
               "lower"),
    FigureSpec("training.co2_t", "CO2", "t", "energy × grid intensity", "lower"),
)


def run(c: Columns) -> dict[str, np.ndarray]:
    wall_s = c["training.wall_days"] * 86400.0 if "training.wall_days" in c else c["training.wall_s"]
    hours = gpu_hours(c["gpus"], wall_s)
    energy = energy_mwh(c["gpus"], c["tdp_W"], c["server_power_factor"], c["power_utilization"], c["pue"], wall_s)
    return {
        "training.gpu_hours": hours,
        "training.cost_usd": rental_cost_usd(hours, c["gpu_hour_usd"]),
        "training.energy_mwh": energy,
        # 1 MWh = 1000 kWh
        "training.electricity_usd": energy * 1000.0 * c["electricity_usd_per_kwh"],
        "training.co2_t": co2_tonnes(energy, c["co2_kg_per_kwh"]),
    }


FIELDS = (
    FieldGroup("train", "Money and energy", ("finance.gpu_hour_usd", "finance.pue", "finance.co2_kg_per_kwh",
                                             "finance.electricity_usd_per_kwh", "finance.server_power_factor",
                                             "finance.power_utilization"), order=14),
    FieldGroup("decide", "Limits, prices and sampling", ("finance.gpu_hour_usd",), order=11),
)
SECTIONS = (
    Section(("train",), "Cost and energy", ("training.cost_usd", "training.gpu_hours", "training.energy_mwh"),
            headline=True, order=2),
    Section(("decide",), "Training cost", ("training.cost_usd",), headline=True, order=2),
    Section(("deploy",), "Training run", ("training.cost_usd",),
            text="Counted at month 0 of renting or buying when the total includes training."),
    Section(("decide",), "Compute and energy", ("training.gpu_hours", "training.energy_mwh"), headline=True, order=6),
)

FAMILY = Family("cost", INPUTS, FIGURES, run, needs=("training", "goodput"), fields=FIELDS, sections=SECTIONS,
                doc="GPU-hours, rental cost, energy, electricity and CO2 of the expected run")
