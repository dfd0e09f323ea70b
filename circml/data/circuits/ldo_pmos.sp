* ldo_pmos: low-dropout regulator (1.0 V in, 0.8 V out) with 5T error amplifier, PMOS pass device, resistive feedback divider and resistive load
.include ../models/ptm45.lib
* ---- sizing / bias parameters ----
.param w_pass=200u l_pass=90n w_in=8u l_in=180n w_ld=8u l_ld=360n w_tail=8u l_tail=360n
.param ibias=20u v_ref=0.6 r1=20k r2=60k rload=1.6k cout=100p cc=5p
Vdd vdd 0 DC 1.0 AC 1
* ---- reference voltage (e.g. from a bandgap) ----
Vref vref 0 DC {v_ref}
* ---- error amplifier: 5T, output rises when fb > vref, which turns the pass device off ----
Iref vdd vbn DC {ibias}
Mb vbn vbn 0 0 nmos45 w={w_tail} l={l_tail}
M0 tail vbn 0 0 nmos45 w={w_tail} l={l_tail}
M1 x fb tail 0 nmos45 w={w_in} l={l_in}
M2 gate vref tail 0 nmos45 w={w_in} l={l_in}
M3 x x vdd vdd pmos45 w={w_ld} l={l_ld}
M4 gate x vdd vdd pmos45 w={w_ld} l={l_ld}
* ---- PMOS pass device and feedback divider (vout = v_ref*(1 + r1/r2)) ----
Mpass out gate vdd vdd pmos45 w={w_pass} l={l_pass}
R1 out fb {r1}
R2 fb 0 {r2}
Cc gate out {cc}
* ---- load ----
Rload out 0 {rload}
Cout out 0 {cout}
.end
