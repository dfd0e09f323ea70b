* sram_6t: 6T SRAM cell with NMOS access transistors, bitline precharge/equalize and write drivers
.include ../models/ptm45.lib
.param wpd=240n wax=160n wpu=100n lmin=45n wpre=400n wwd=1u cbl=30f
Vdd vdd 0 DC 1.0
* cycles of 2 ns: precharge while pre_n = 0; write 0 (1 ns), read (3 ns), write 1 (5 ns), read (7 ns)
Vpre pre_n 0 PULSE(0 1.0 1n 20p 20p 960p 2n)
Vwl wl 0 PULSE(0 1.0 1100p 20p 20p 760p 2n)
Vwe0 we0 0 PULSE(0 1.0 1050p 20p 20p 860p 8n)
Vwe1 we1 0 PULSE(0 1.0 5050p 20p 20p 860p 8n)
* storage cross-coupled inverters
Mpu1 q q_n vdd vdd pmos45 w={wpu} l={lmin}
Mpd1 q q_n 0 0 nmos45 w={wpd} l={lmin}
Mpu2 q_n q vdd vdd pmos45 w={wpu} l={lmin}
Mpd2 q_n q 0 0 nmos45 w={wpd} l={lmin}
* access transistors
Max1 bl wl q 0 nmos45 w={wax} l={lmin}
Max2 bl_n wl q_n 0 nmos45 w={wax} l={lmin}
* bitline precharge and equalize
Mpc1 bl pre_n vdd vdd pmos45 w={wpre} l={lmin}
Mpc2 bl_n pre_n vdd vdd pmos45 w={wpre} l={lmin}
Meq bl pre_n bl_n vdd pmos45 w={wpre} l={lmin}
* write drivers: we0 pulls bl low (stores 0), we1 pulls bl_n low (stores 1)
Mwd0 bl we0 0 0 nmos45 w={wwd} l={lmin}
Mwd1 bl_n we1 0 0 nmos45 w={wwd} l={lmin}
Cbl bl 0 {cbl}
Cbln bl_n 0 {cbl}
.end
