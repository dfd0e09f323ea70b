* comparator_two_stage: continuous-time open-loop two-stage comparator (NMOS-input 5T preamp, PMOS common-source gain stage, inverter output buffer)
.include ../models/ptm45.lib
* ---- sizing / bias parameters ----
.param w_in=8u l_in=180n w_ld=4u l_ld=180n w_tail=8u l_tail=360n w_cs=16u l_cs=180n
.param w_sk=8u l_sk=360n w_invn=1u w_invp=2u l_inv=45n ibias=20u cl=20f vref=0.6
Vdd vdd 0 DC 1.0
* ---- bias ----
Iref vdd vbn DC {ibias}
Mb vbn vbn 0 0 nmos45 w={w_tail} l={l_tail}
* ---- preamplifier (inp on the mirror-output side: o1 falls when inp > inn) ----
M0 tail vbn 0 0 nmos45 w={w_tail} l={l_tail}
M1 x inn tail 0 nmos45 w={w_in} l={l_in}
M2 o1 inp tail 0 nmos45 w={w_in} l={l_in}
M3 x x vdd vdd pmos45 w={w_ld} l={l_ld}
M4 o1 x vdd vdd pmos45 w={w_ld} l={l_ld}
* ---- second gain stage: out goes high when inp > inn ----
M5 out o1 vdd vdd pmos45 w={w_cs} l={l_cs}
M6 out vbn 0 0 nmos45 w={w_sk} l={l_sk}
* ---- output inverter buffer (digital complement out_n) ----
M7 out_n out vdd vdd pmos45 w={w_invp} l={l_inv}
M8 out_n out 0 0 nmos45 w={w_invn} l={l_inv}
Cl out_n 0 {cl}
* ---- stimulus: reference on inn, +/-50 mV square wave around it on inp ----
Vinn inn 0 DC {vref}
Vinp inp 0 DC 0.62 PULSE(0.55 0.65 2n 100p 100p 10n 20n)
.end
