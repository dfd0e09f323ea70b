* ota_5t: five-transistor OTA with NMOS input pair, PMOS current-mirror load and NMOS tail current source
.include ../models/ptm45.lib
* ---- sizing / bias parameters (W, L per matched group) ----
.param w_in=8u l_in=180n w_ld=8u l_ld=360n w_tail=8u l_tail=360n w_bd=8u
.param ibias=20u cl=200f vcm=0.6 vshift=0.1
Vdd vdd 0 DC 1.0
* ---- bias: reference current into the diode that sets the tail current ----
Iref vdd vbn DC {ibias}
M6 vbn vbn 0 0 nmos45 w={w_bd} l={l_tail}
* ---- OTA core ----
M5 tail vbn 0 0 nmos45 w={w_tail} l={l_tail}
M1 x inp tail 0 nmos45 w={w_in} l={l_in}
M2 out inn tail 0 nmos45 w={w_in} l={l_in}
M3 x x vdd vdd pmos45 w={w_ld} l={l_ld}
M4 out x vdd vdd pmos45 w={w_ld} l={l_ld}
Cl out 0 {cl}
* ---- open-loop bench: inputs at vcm, AC 1 on inp; DC-only servo (rfb, cfb corner ~1e-10 Hz)
* closes the loop at DC through a level shift so the output settles at vcm - vshift ----
Vinp inp 0 DC {vcm} AC 1
Vshift fb out DC {vshift}
Rfb fb inn 1g
Cfb inn 0 1
.end
