* ref_bandgap_pnp: sub-1V current-mode (Banba) bandgap reference with substrate PNPs (1:8), 5T error amplifier, PMOS current mirrors and start-up
.include ../models/ptm45.lib
* ---- simple vertical-PNP model (one unit device) ----
.model qpnp pnp is=1e-16 bf=100 nf=1 eg=1.11 xti=3
* ---- sizing parameters: PTAT via r1 (dVbe = Vt*ln8), CTAT via r2, output scaled by r3 ----
.param r1=10k r2=106k r3=50k w_p=16u l_p=500n w_ain=4u l_ain=360n w_ald=4u l_ald=360n
.param w_at=4u l_at=360n iamp=5u
Vdd vdd 0 DC 1.0
* ---- matched PMOS current sources driven by the error-amplifier output vg ----
M1 a vg vdd vdd pmos45 w={w_p} l={l_p}
M2 b vg vdd vdd pmos45 w={w_p} l={l_p}
M3 vref vg vdd vdd pmos45 w={w_p} l={l_p}
* ---- branch A: unit PNP, branch B: r1 + 8 unit PNPs; r2 from each node to ground (CTAT) ----
Q1 0 0 a qpnp
R1 b e2 {r1}
Q2a 0 0 e2 qpnp
Q2b 0 0 e2 qpnp
Q2c 0 0 e2 qpnp
Q2d 0 0 e2 qpnp
Q2e 0 0 e2 qpnp
Q2f 0 0 e2 qpnp
Q2g 0 0 e2 qpnp
Q2h 0 0 e2 qpnp
R2a a 0 {r2}
R2b b 0 {r2}
* ---- output: summed PTAT + CTAT current into r3 ----
R3 vref 0 {r3}
Cref vref 0 1p
* ---- error amplifier (5T, NMOS input) forcing V(a) = V(b) ----
Iamp vdd vbn DC {iamp}
Mab vbn vbn 0 0 nmos45 w={w_at} l={l_at}
Ma0 at vbn 0 0 nmos45 w={w_at} l={l_at}
Ma1 ax b at 0 nmos45 w={w_ain} l={l_ain}
Ma2 vg a at 0 nmos45 w={w_ain} l={l_ain}
Ma3 ax ax vdd vdd pmos45 w={w_ald} l={l_ald}
Ma4 vg ax vdd vdd pmos45 w={w_ald} l={l_ald}
Cc vg vdd 1p
* ---- start-up: pulls vg low while branch A carries no current ----
Ms1 st 0 vdd vdd pmos45 w=100n l=4u
Ms2 st a 0 0 nmos45 w=1u l=180n
Ms3 vg st 0 0 nmos45 w=200n l=180n
.end
