* opamp_fully_differential_cmfb: fully differential two-stage Miller op-amp with resistive CM sensing and a differential-pair CMFB amplifier driving the output-stage current sinks
.include ../models/ptm45.lib
* ---- sizing / bias parameters (W, L per matched group) ----
.param w_in=32u l_in=180n w_ld=8u l_ld=360n w_tail=16u l_tail=360n w_bd=16u r_cm1=500k
.param w_cs=32u l_cs=360n w_sk=16u l_sk=360n cc=1p rz=2k cl=1p
.param w_cmi=24u l_cmi=180n w_cml=8u l_cml=360n w_cmt=16u r_cm=1meg c_cm=100f c_cmfb=200f
.param ibias=20u vcm=0.5 vcm_ref=0.5
Vdd vdd 0 DC 1.0
* ---- bias ----
Iref vdd vbn DC {ibias}
Mb vbn vbn 0 0 nmos45 w={w_bd} l={l_tail}
* ---- stage 1: NMOS pair, PMOS loads whose gates sit at the stage-1 common mode (cm1) ----
M0 tail vbn 0 0 nmos45 w={w_tail} l={l_tail}
M1 o1n inp tail 0 nmos45 w={w_in} l={l_in}
M2 o1p inn tail 0 nmos45 w={w_in} l={l_in}
M3 o1n cm1 vdd vdd pmos45 w={w_ld} l={l_ld}
M4 o1p cm1 vdd vdd pmos45 w={w_ld} l={l_ld}
Rc1 o1n cm1 {r_cm1}
Rc2 o1p cm1 {r_cm1}
* ---- stage 2: PMOS common-source pair, NMOS sinks controlled by the CMFB voltage ----
M5 outp o1n vdd vdd pmos45 w={w_cs} l={l_cs}
M6 outn o1p vdd vdd pmos45 w={w_cs} l={l_cs}
M7 outp vcmfb 0 0 nmos45 w={w_sk} l={l_sk}
M8 outn vcmfb 0 0 nmos45 w={w_sk} l={l_sk}
* ---- Miller compensation with nulling resistors ----
Rz1 o1n cz1 {rz}
Cc1 cz1 outp {cc}
Rz2 o1p cz2 {rz}
Cc2 cz2 outn {cc}
Cl1 outp 0 {cl}
Cl2 outn 0 {cl}
* ---- CMFB: output CM sensed by r_cm / c_cm, compared to vcm_ref by a 5T amplifier ----
Rs1 outp cmo {r_cm}
Rs2 outn cmo {r_cm}
Cs1 outp cmo {c_cm}
Cs2 outn cmo {c_cm}
Vcmref cmref 0 DC {vcm_ref}
M9 cmt vbn 0 0 nmos45 w={w_cmt} l={l_tail}
M10 cd cmo cmt 0 nmos45 w={w_cmi} l={l_cmi}
M11 vcmfb cmref cmt 0 nmos45 w={w_cmi} l={l_cmi}
M12 cd cd vdd vdd pmos45 w={w_cml} l={l_cml}
M13 vcmfb cd vdd vdd pmos45 w={w_cml} l={l_cml}
* CM-loop compensation
Ccmfb vcmfb 0 {c_cmfb}
* ---- open-loop bench: both inputs at vcm (mid-rail), AC 1 on inp; a DC-only differential
* servo (E senses outp-outn, rfb/cfb corner ~1e-10 Hz) nulls the differential output ----
Vinp inp 0 DC {vcm} AC 1
Vcmn vcmn 0 DC {vcm}
Ediff fbs vcmn outp outn 1
Rfb fbs inn 1g
Cfb inn vcmn 1
.end
